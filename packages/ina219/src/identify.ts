import { CHIPS, TI_MANUFACTURER_ID, type ChipId, type ChipSpec } from './chips/table.js';
import { hex2, type RegisterIo } from './device.js';
import { ChipMismatchError } from './errors.js';
import type { RegisterSpec } from './registers.js';

const idRegister = (ptr: number): RegisterSpec => ({ ptr, name: 'ID', access: 'r', bytes: 2, powerOn: null, signed: false });

/** The two places TI's current monitors keep their IDs: 0xFE/0xFF (INA226, INA260) and 0x3E/0x3F (INA228). */
const ID_LOCATIONS = [
  ...new Map(Object.values(CHIPS).flatMap((c) => (c.identity ? [[c.identity.manufacturerPtr, c.identity]] : []))).values(),
];

export interface ProbeResult {
  /** The known chip whose manufacturer and die ID were read, or null. */
  id: ChipId | null;
  /** What was read, for messages: "an INA228 (manufacturer 0x5449, device 0x2281 at 0x3e/0x3f)". */
  detail: string;
}

/**
 * Reads every ID location and names the chip that answers with TI's manufacturer ID and a die
 * ID the meter knows. Read errors count as "no ID there": an INA219 has no ID registers, and
 * what it answers at other pointers is not documented.
 */
export async function probeChip(withRetries: RegisterIo): Promise<ProbeResult> {
  const io = withRetries.once();
  const seen: string[] = [];
  for (const loc of ID_LOCATIONS) {
    let manufacturer: number;
    let device: number;
    try {
      manufacturer = await io.read(idRegister(loc.manufacturerPtr));
      device = await io.read(idRegister(loc.devicePtr));
    } catch {
      continue;
    }
    seen.push(`0x${manufacturer.toString(16)}/0x${device.toString(16)} at 0x${hex2(loc.manufacturerPtr)}/0x${hex2(loc.devicePtr)}`);
    if (manufacturer !== TI_MANUFACTURER_ID) continue;
    const chip = Object.values(CHIPS).find((c) => c.identity?.manufacturerPtr === loc.manufacturerPtr && c.identity.dieId === device >> 4);
    if (chip)
      return {
        id: chip.id,
        detail: `an ${chip.name} (manufacturer 0x${manufacturer.toString(16)}, device 0x${device.toString(16)} at 0x${hex2(loc.manufacturerPtr)}/0x${hex2(loc.devicePtr)})`,
      };
  }
  return { id: null, detail: seen.length ? `a chip without a known TI ID (read ${seen.join(', ')})` : 'a chip without ID registers' };
}

/**
 * Checks that the chip answering is `chip`: its manufacturer and die ID where it has them (read
 * errors propagate: nothing answering is a fault, not a mismatch); for the INA219, which has
 * none, that no other known chip identifies itself at the address. Throws ChipMismatchError.
 */
export async function checkIdentity(io: RegisterIo, chip: ChipSpec): Promise<void> {
  const id = chip.identity;
  if (id === null) {
    const probe = await probeChip(io);
    if (probe.id !== null) throw new ChipMismatchError(chip.name, io.address, probe.id, probe.detail);
    return;
  }
  const manufacturer = await io.read(idRegister(id.manufacturerPtr));
  const device = await io.read(idRegister(id.devicePtr));
  if (manufacturer === id.manufacturerId && device >> 4 === id.dieId) return;
  const probe = await probeChip(io);
  throw new ChipMismatchError(
    chip.name,
    io.address,
    probe.id,
    probe.id !== null
      ? probe.detail
      : `a chip that reads manufacturer 0x${manufacturer.toString(16)} and device 0x${device.toString(16)} at 0x${hex2(id.manufacturerPtr)}/0x${hex2(id.devicePtr)} (an ${chip.name} reads 0x${id.manufacturerId.toString(16)} and 0x${id.dieId.toString(16)}x)`,
  );
}
