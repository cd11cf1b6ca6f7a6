/**
 * The two ERC-20 reads the meter makes, as JSON-RPC `eth_call` payloads and their decoding. Pure.
 *
 * Selectors are the first four bytes of keccak256 of the signature (the Solidity ABI):
 * `balanceOf(address)` = 0x70a08231, `decimals()` = 0x313ce567 (tests recompute them). The
 * address argument is one 32-byte word, left-padded with zeros.
 */
export const BALANCE_OF_SELECTOR = '0x70a08231';
export const DECIMALS_SELECTOR = '0x313ce567';

export function balanceOfCall(owner: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(owner)) throw new Error(`owner ${JSON.stringify(owner)} is not 0x + 40 hex digits`);
  return `${BALANCE_OF_SELECTOR}${owner.slice(2).toLowerCase().padStart(64, '0')}`;
}

/** One uint256 return word (`0x` + 64 hex); anything else is not an ERC-20 answer. */
export function decodeUint256(result: unknown, what: string): bigint {
  if (typeof result !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(result))
    throw new Error(
      result === '0x'
        ? `${what} returned nothing: the token address has no contract on this chain (wrong --reward-token or --rpc-url?)`
        : `${what} returned ${JSON.stringify(String(result).slice(0, 80))}, not one 32-byte word: is --reward-token an ERC-20 contract?`,
    );
  return BigInt(result);
}

/** `decimals()` is a uint8; a larger value is not an ERC-20 answer. */
export function decodeDecimals(result: unknown): number {
  const d = decodeUint256(result, 'decimals()');
  if (d > 255n) throw new Error(`decimals() returned ${d}, not a uint8: is --reward-token an ERC-20 contract?`);
  return Number(d);
}

/**
 * Base units as whole tokens, exactly, in decimal text: `formatUnits(40n * 10n**18n, 18)` =
 * `"40"`, `formatUnits(1234500n, 6)` = `"1.2345"`. A uint256 does not fit a JSON number, so
 * state.json carries this text (and the raw integer as text).
 */
export function formatUnits(raw: bigint, decimals: number): string {
  const negative = raw < 0n;
  const digits = (negative ? -raw : raw).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}
