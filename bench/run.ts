/**
 * `npm run bench`: every benchmark of the project in one run. For now the TFTP one
 * (bench/tftp.ts); the others can join here.
 */
import { runTftpBench } from './tftp.ts';

console.log('## TFTP throughput\n');
console.log(await runTftpBench());
