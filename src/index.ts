// The embedding API: start a member in-process with options that mirror etcd's flags.
export { startMember, type Member } from './server/member';
export { defaultConfig, validateConfig, type ServerConfig } from './server/config';
