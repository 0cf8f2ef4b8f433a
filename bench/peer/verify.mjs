// One argon2id verify with the peer's library (@node-rs/argon2), timed as bench/ times
// argon2-cffi's: a hash made at the given parameters, verified once to warm up, then N times.
//
//   node verify.mjs TIME_COST MEMORY_COST PARALLELISM [N]
//
// Prints the mean wall time and the mean CPU time of one verify, in ms, on one line.
import { hash, verify } from '@node-rs/argon2';

const [timeCost, memoryCost, parallelism, count = '30'] = process.argv.slice(2).map(Number);
const encoded = await hash('x', { algorithm: 2, timeCost, memoryCost, parallelism });
await verify(encoded, 'x');
const cpu = process.cpuUsage();
const start = process.hrtime.bigint();
for (let i = 0; i < count; i += 1) await verify(encoded, 'x');
const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
const spent = process.cpuUsage(cpu);
console.log(wallMs / count, (spent.user + spent.system) / 1000 / count);
