// The versions this server reports. We implement etcd's v3 API and report a 3.5 release because kube-apiserver gates
// RequestWatchProgress on a Maintenance.Status version >= 3.5.13 (see docs/kube-contract.md, "Version gate").
// Keep SERVER_VERSION strict semver "X.Y.Z": kube parses it with version.ParseSemantic.

export const SERVER_VERSION = '3.5.21';
// The cluster version is the server version with the patch level zeroed (etcd version.Cluster()).
export const CLUSTER_VERSION = '3.5.0';
// Major.minor of the API, as etcd's version.APIVersion.
export const API_VERSION = '3.5';
// etcd prints its git commit; we have none to report, like a `go build` without ldflags.
export const GIT_SHA = 'Not provided (tsetcd)';

/** Go's GOARCH names for Node's process.arch values (only the ones etcd is built for differ). */
function goArch(arch: string): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    default:
      return arch; // arm64, arm, ppc64, s390x, riscv64 are spelled the same
  }
}

/**
 * The output of `etcd --version`, byte for byte in etcd's layout (etcdmain/config.go parse()), with the runtime
 * reported where Go's would be.
 */
export function versionText(): string {
  return (
    `etcd Version: ${SERVER_VERSION}\n` +
    `Git SHA: ${GIT_SHA}\n` +
    `Go Version: node${process.versions.node}\n` +
    `Go OS/Arch: ${process.platform}/${goArch(process.arch)}\n`
  );
}
