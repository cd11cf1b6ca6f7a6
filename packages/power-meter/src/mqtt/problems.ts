import type { ErrorWithReasonCode } from 'mqtt';
import { ENV_FILE } from '../hints.js';

/**
 * What went wrong with the broker connection, in the user's words, pure: one classification for
 * the daemon's log and connection state and for `doctor`. A problem that retrying cannot fix (a
 * refused login, a certificate the meter cannot trust) is `lasting`: retried slowly, and its fix
 * names the setting to change instead of "check that the broker runs".
 */
export type MqttProblemKind = 'login' | 'certificate' | 'client-certificate' | 'not-tls' | 'oversized' | 'network';

export interface MqttProblem {
  kind: MqttProblemKind;
  /** What happened, for the log and the connection state (never a password). */
  text: string;
  /** What to do. */
  fix: string;
  /** Retrying cannot fix it: wait the longest delay between attempts. */
  lasting: boolean;
}

/** CONNACK reason codes for a refused login: MQTT 5 (0x86 bad user name or password, 0x87 not authorized), 3.1.1 (4, 5). */
const LOGIN_REFUSED = new Set([134, 135, 4, 5]);

/**
 * Node's certificate verification codes (OpenSSL's X509_V_ERR_* names, as tls.connect reports them)
 * that mean "this certificate is not signed by a CA the meter trusts".
 */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

export function describeMqttError(err: Error): MqttProblem {
  const code = (err as ErrorWithReasonCode).code as number | string | undefined;
  const message = err.message;
  if (typeof code === 'number' && LOGIN_REFUSED.has(code))
    return {
      kind: 'login',
      text: `the broker refused the login (${message.replace(/^Connection refused: /, '')}, reason code ${code})`,
      fix: `check POWER_METER_MQTT_USER and POWER_METER_MQTT_PASSWORD in ${ENV_FILE} (Home Assistant: a user of the Mosquitto add-on), then restart power-meter`,
      lasting: true,
    };
  if (typeof code === 'string' && UNTRUSTED.has(code))
    return {
      kind: 'certificate',
      text: `the broker's certificate is not signed by a CA this meter trusts (${code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'SELF_SIGNED_CERT_IN_CHAIN' ? 'self-signed' : 'unknown issuer'}: ${code})`,
      fix: "give the CA certificate that signed the broker's certificate (for a self-signed broker: its own certificate) with --mqtt-ca <file.pem>, then restart power-meter",
      lasting: true,
    };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return {
      kind: 'certificate',
      text: `the broker's certificate is for another name (${message.replace(/^Hostname\/IP does not match certificate's altnames: /, '')})`,
      fix: 'put a host name the certificate lists in --mqtt-url, or give the broker a certificate for the name you use',
      lasting: true,
    };
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return {
      kind: 'certificate',
      text: `the broker's certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'} (${code})`,
      fix: "renew the broker's certificate, and check this Pi's clock (timedatectl status)",
      lasting: true,
    };
  if (
    typeof code === 'string' &&
    /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE)/.test(code)
  )
    return {
      kind: 'client-certificate',
      text: `the broker refused the TLS handshake (${code}): it wants a client certificate it trusts`,
      fix: "give the meter a client certificate signed by the broker's CA and its key with --mqtt-cert and --mqtt-key, then restart power-meter",
      lasting: true,
    };
  if (code === 'MQTT_TLS_CLOSED_AFTER_HANDSHAKE') {
    const withCert = (err as Error & { withClientCertificate?: boolean }).withClientCertificate === true;
    return {
      kind: 'client-certificate',
      text: `${message}: it most likely ${withCert ? "does not trust the meter's client certificate" : 'wants a client certificate'}`,
      fix: withCert
        ? 'give --mqtt-cert a certificate signed by the CA the broker trusts for clients (its cafile), with its key in --mqtt-key, then restart power-meter'
        : "give the meter a client certificate signed by the broker's CA and its key with --mqtt-cert and --mqtt-key, then restart power-meter",
      lasting: true,
    };
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG')
    return {
      kind: 'not-tls',
      text: `the broker did not answer TLS on this port (${code})`,
      fix: "use mqtt:// for a plain port (1883) or the broker's TLS port (usually 8883) with mqtts://",
      lasting: true,
    };
  if (code === 'MQTT_PACKET_TOO_LARGE' || code === 'MQTT_MALFORMED_PACKET' || code === 149)
    return {
      kind: 'oversized',
      text: message,
      fix: 'check what else publishes to the topics the meter subscribes to (the discovery prefix /status)',
      lasting: false,
    };
  return {
    kind: 'network',
    text: typeof code === 'string' ? code : message,
    fix: 'check that the broker runs, the host and port in --mqtt-url (mqtt:// is 1883, mqtts:// 8883) and the network',
    lasting: false,
  };
}
