// `npm start`: a member with etcd's defaults (name "default", data in ./default.etcd, clients on
// http://localhost:2379, i.e. 127.0.0.1:2379), accepting the same flags as bin/etcd.

import { runEtcd } from './main-etcd';

void runEtcd(process.argv.slice(2));
