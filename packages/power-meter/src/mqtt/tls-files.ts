import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MqttTls } from './connection.js';

/**
 * The PEM files of --mqtt-ca, --mqtt-cert and --mqtt-key, read and checked before the meter
 * starts: a missing, unreadable or wrong file is a setting to fix (the program exits 2 with this
 * message), not a connection problem found minutes later. Node's TLS would take a CA file of
 * garbage without a word (and then trust nothing), so each file is parsed here, and the key is
 * checked against the certificate.
 */
export class MqttTlsFileError extends Error {
  override name = 'MqttTlsFileError';
  constructor(
    /** The flag, e.g. --mqtt-ca. */
    readonly setting: string,
    readonly file: string,
    why: string,
  ) {
    super(`invalid setting ${setting} = ${JSON.stringify(file)}: ${why}`);
  }
}

/** Certificates and keys are a few KB; a bigger file is not one. */
const MAX_PEM_BYTES = 256 * 1024;

export function readMqttTls(s: { mqttCa: string; mqttCert: string; mqttKey: string }): MqttTls {
  const out: MqttTls = {};
  if (s.mqttCa) {
    out.ca = read('--mqtt-ca', s.mqttCa);
    certificate('--mqtt-ca', s.mqttCa, out.ca);
  }
  if (s.mqttCert) {
    out.cert = read('--mqtt-cert', s.mqttCert);
    const cert = certificate('--mqtt-cert', s.mqttCert, out.cert);
    if (s.mqttKey) {
      out.key = read('--mqtt-key', s.mqttKey);
      let key: ReturnType<typeof createPrivateKey>;
      try {
        key = createPrivateKey(out.key);
      } catch (err) {
        const encrypted = /passphrase|encrypted/i.test((err as Error).message) || out.key.includes('ENCRYPTED');
        throw new MqttTlsFileError(
          '--mqtt-key',
          s.mqttKey,
          encrypted
            ? 'the key is encrypted: the meter starts unattended, so give it an unencrypted key (openssl pkey -in key.pem -out plain.pem), readable only by the service user'
            : 'not a PEM private key (it should start with -----BEGIN PRIVATE KEY----- or -----BEGIN EC/RSA PRIVATE KEY-----)',
        );
      }
      if (!cert.checkPrivateKey(key))
        throw new MqttTlsFileError('--mqtt-key', s.mqttKey, `this key does not belong to the certificate in ${s.mqttCert}`);
    }
  }
  return out;
}

function read(setting: string, file: string): Buffer {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MqttTlsFileError(
      setting,
      file,
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? `this user cannot read it: give the user the meter runs as read access (sudo chown that-user ${file}; mode 600 for a key)`
          : `cannot read it (${code ?? (err as Error).message})`,
    );
  }
  if (text.length > MAX_PEM_BYTES) throw new MqttTlsFileError(setting, file, `${text.length} bytes: too big for a PEM certificate or key`);
  return text;
}

function certificate(setting: string, file: string, pem: Buffer): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new MqttTlsFileError(setting, file, 'not a PEM certificate (it should contain -----BEGIN CERTIFICATE-----)');
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new MqttTlsFileError(setting, file, `not a readable PEM certificate (${(err as Error).message})`);
  }
}
