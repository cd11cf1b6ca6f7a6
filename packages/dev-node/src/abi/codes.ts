/**
 * Return codes of the W3bstream v1 host functions (the node's `ResultStatusCode`, in this
 * order: 0 OK, 1 UnexportedHandler, ... 11 EmptyMqttTopic, and -1 for every other failure).
 * The SDK treats any non-zero code as failure; most of its wrappers then assert, i.e. trap.
 */
export const ResultCode = {
  OK: 0,
  UnexportedHandler: 1,
  ResourceNotFound: 2,
  ResourceTypeError: 3,
  ImportNotFound: 4,
  ImportCallFailed: 5,
  TransDataToVMFailed: 6,
  TransDataFromVMFailed: 7,
  HostInternal: 8,
  EnvKeyNotFound: 9,
  NoDBContext: 10,
  EmptyMqttTopic: 11,
  Failed: -1,
} as const;
export type ResultCodeValue = (typeof ResultCode)[keyof typeof ResultCode];

/** The node's log levels as the applet passes them to ws_log (the SDK's Log uses 4 = info). */
export function logLevelName(level: number): string {
  // conflog levels: panic 0, fatal 1, error 2, warn 3, info 4, debug 5, trace 6.
  return ['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'][level] ?? `level${level}`;
}
