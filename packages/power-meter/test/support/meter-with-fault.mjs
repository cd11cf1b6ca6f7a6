// A test-only entry: the power-meter program (dist/cli.js) with one fault injected through its
// dependencies (dist/program-deps.js), so the program itself carries no test branch:
//   node meter-with-fault.mjs <fault> <power-meter arguments...>
// Faults:
//   sampler             the sampler's loop stops for good at its first window
//   publisher           the outbox fails under the publisher after its first delivery
//   emulated-chip=<id>  the simulated sensor is that chip (e.g. ina228), whatever --sim-chip says
import { createSampler, createSensor } from '@power-meter/ina219';
import { Outbox } from '@power-meter/w3bstream';
import { programDeps } from '../../dist/program-deps.js';

const [fault, ...args] = process.argv.slice(2);
if (fault === 'sampler') {
  programDeps.createSampler = (opts) =>
    createSampler({
      ...opts,
      onWindow: () => {
        throw new Error('test fault: the sampler stops');
      },
    });
} else if (fault === 'publisher') {
  programDeps.openOutbox = (file, opts) => {
    const outbox = Outbox.open(file, opts);
    const markDelivered = outbox.markDelivered.bind(outbox);
    const peek = outbox.peek.bind(outbox);
    let delivered = false;
    outbox.markDelivered = (...a) => {
      const removed = markDelivered(...a);
      delivered = true;
      return removed;
    };
    outbox.peek = (...a) => {
      if (delivered) throw new Error('test fault: the outbox fails after the first delivery');
      return peek(...a);
    };
    return outbox;
  };
} else if (fault?.startsWith('emulated-chip=')) {
  const chip = fault.slice('emulated-chip='.length);
  programDeps.createSensor = (opts) => createSensor({ ...opts, simEmulatedChip: chip });
} else {
  process.stderr.write(`meter-with-fault: unknown fault ${fault}\n`);
  process.exit(64);
}
// The program parses process.argv: it sees only its own arguments.
process.argv = [process.argv[0], process.argv[1], ...args];
await import('../../dist/cli.js');
