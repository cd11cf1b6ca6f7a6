import { describe, expect, it } from 'vitest';
import { Pkcs11UriError, formatPkcs11Uri, parsePkcs11Uri } from '../src/index.js';

describe('PKCS#11 URIs (RFC 7512)', () => {
  it('reads the path attributes that select a token and a key, %-decoded', () => {
    expect(parsePkcs11Uri('pkcs11:token=meter;object=device-key')).toEqual({ token: 'meter', object: 'device-key' });
    const u = parsePkcs11Uri(
      'pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=4a1f;slot-id=7;object=k%C3%A9y;id=%01%02%ff;type=private',
    );
    expect(u).toMatchObject({
      token: 'My Token',
      manufacturer: 'SoftHSM project',
      model: 'SoftHSM v2',
      serial: '4a1f',
      slotId: 7,
      object: 'kéy',
      type: 'private',
    });
    expect(u.id).toEqual(Buffer.from([1, 2, 255]));
    // RFC 7512's own examples of characters allowed unescaped in a path value.
    expect(parsePkcs11Uri("pkcs11:object=a:b[c]@d!e$f'g(h)i*j+k,l=m&n").object).toBe("a:b[c]@d!e$f'g(h)i*j+k,l=m&n");
    expect(parsePkcs11Uri('PKCS11:object=x').object).toBe('x');
    expect(parsePkcs11Uri('pkcs11:id=%AB').id).toEqual(Buffer.from([0xab]));
    expect(parsePkcs11Uri('pkcs11:object=x;library-version=2.6').libraryVersion).toEqual({ major: 2, minor: 6 });
  });

  it('reads module-path from the query', () => {
    expect(parsePkcs11Uri('pkcs11:object=k?module-path=/usr/lib/softhsm/libsofthsm2.so').modulePath).toBe(
      '/usr/lib/softhsm/libsofthsm2.so',
    );
  });

  it.each([
    ['meter', 'must start with "pkcs11:"'],
    ['pkcs11:token=meter', 'names no key'],
    ['pkcs11:object=a;object=b', 'appears more than once'],
    ['pkcs11:object=a;colour=blue', 'unknown attribute "colour"'],
    ['pkcs11:object=a b', 'must be %-encoded'],
    ['pkcs11:object=a"b', 'must be %-encoded'],
    ['pkcs11:object=a/b', 'must be %-encoded'],
    ['pkcs11:object=%zz', 'must be %-encoded'],
    ['pkcs11:object=%ff', 'not UTF-8'],
    ['pkcs11:object=a;slot-id=x', 'slot-id must be a decimal'],
    ['pkcs11:object=a;type=cert', 'names no key pair'],
    ['pkcs11:object=a;type=banana', 'type must be one of'],
    ['pkcs11:object=a?pin-value=1234', 'PIN is read from the environment only'],
    ['pkcs11:object=a?pin-source=file:/etc/pin', 'PIN is read from the environment only'],
    ['pkcs11:object=a?module-path=/a&module-path=/b', 'more than once'],
    ['pkcs11:object=a?foo=bar', 'unknown query attribute'],
    ['pkcs11:object', 'not name=value'],
    ['pkcs11:id=', 'id is empty'],
  ])('refuses %s (%s)', (uri, why) => {
    expect(() => parsePkcs11Uri(uri)).toThrow(Pkcs11UriError);
    expect(() => parsePkcs11Uri(uri)).toThrow(why);
  });

  it('never repeats a PIN it refused', () => {
    try {
      parsePkcs11Uri('pkcs11:object=a?pin-value=s3cret-1234');
    } catch (err) {
      expect((err as Error).message).not.toContain('s3cret-1234');
    }
  });

  it('writes a URI back that parses to the same selection', () => {
    const u = parsePkcs11Uri('pkcs11:token=My%20Token;object=device-key;id=%01%ff;slot-id=3');
    expect(parsePkcs11Uri(formatPkcs11Uri(u))).toEqual(u);
  });
});
