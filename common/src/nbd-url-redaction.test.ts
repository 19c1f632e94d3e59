import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UNPARSEABLE_NBD_URL, redactNbdUrl } from './nbd-url-redaction.ts';

const cases: [unknown, string][] = [
  ['nbd://10.0.0.1/disk', 'nbd://10.0.0.1:10809/disk'],
  ['nbd://10.0.0.1:10810/disk', 'nbd://10.0.0.1:10810/disk'],
  ['nbd://[fd00::1]:10809/x', 'nbd://[fd00::1]:10809/x'],
  ['nbd://admin:s3cret@10.0.0.1/disk', 'nbd://10.0.0.1:10809/disk'],
  ['nbd://10.0.0.1/disk?token=s3cret#frag', 'nbd://10.0.0.1:10809/disk'],
  ['nbd+unix:///e?socket=/run/nbd.sock&tls-psk=s3cret', 'nbd+unix:///e?socket=/run/nbd.sock'],
  ['nbd+unix://user:s3cret@/e?socket=/run/nbd.sock', UNPARSEABLE_NBD_URL],
  ['http://user:s3cret@10.0.0.1/', UNPARSEABLE_NBD_URL],
  ['s3cret', UNPARSEABLE_NBD_URL],
  [42, UNPARSEABLE_NBD_URL],
];
for (const [url, want] of cases) {
  test(`redacts ${JSON.stringify(url)} to ${want}`, () => {
    const got = redactNbdUrl(url);
    assert.equal(got, want);
    assert.doesNotMatch(got, /s3cret|admin|token|frag/);
  });
}
