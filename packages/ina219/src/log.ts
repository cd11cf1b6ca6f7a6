/**
 * The leveled logger a program hands this library. Declared here, structurally, so the library
 * depends on no logging package: `@power-meter/service`'s Logger is one, and so is anything with
 * these five methods. Each call states its level (journald priority in the service's logger);
 * `fields` are facts a reader may filter on, written by the logger after the message.
 */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

export interface Log {
  error(message: string, fields?: LogFields): void;
  warning(message: string, fields?: LogFields): void;
  notice(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
}
