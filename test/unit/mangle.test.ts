// libdm's name mangling: bytes outside `0-9 A-Z a-z # + - . : = @ _` travel
// as `\xNN` (lower-case hex, one sequence per UTF-8 byte). Expected strings
// are written by hand, with their bytes where escapes make them hard to read.

import { expect } from 'chai';

import { demangleName, mangleName } from '../../src/dm/mangle.js';
import { DmError } from '../../src/ioctl/errors.js';

/** The bytes of a string, as hex pairs separated by spaces. */
function hexBytes(text: string): string {
  return [...Buffer.from(text, 'latin1')].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
}

describe('mangleName', function () {
  it('escapes a space in auto mode', function () {
    expect(hexBytes(mangleName('xx yy'))).to.equal('78 78 5c 78 32 30 79 79');
  });

  it('defaults to auto mode', function () {
    expect(mangleName('xx yy')).to.equal(mangleName('xx yy', 'auto'));
  });

  it('keeps every whitelisted byte', function () {
    const whitelist = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#+-.:=@_';
    expect(mangleName(whitelist)).to.equal(whitelist);
  });

  const escaped: [string, string, string][] = [
    ['tab', 'a\tb', 'a\\x09b'],
    ['slash', 'a/b', 'a\\x2fb'],
    ['percent', 'a%b', 'a\\x25b'],
    ['quote', 'a"b', 'a\\x22b'],
    ['comma', 'a,b', 'a\\x2cb'],
    ['tilde', 'a~b', 'a\\x7eb'],
  ];
  for (const [what, name, expected] of escaped) {
    it(`escapes a ${what}`, function () {
      expect(mangleName(name)).to.equal(expected);
    });
  }

  it('escapes each UTF-8 byte', function () {
    // U+00E4 is C3 A4 in UTF-8; U+20AC is E2 82 AC.
    expect(mangleName('\u00e4\u20ac')).to.equal('\\xc3\\xa4\\xe2\\x82\\xac');
  });

  it('keeps mangled sequences in auto mode', function () {
    expect(mangleName('xx\\x20yy', 'auto')).to.equal('xx\\x20yy');
  });

  it('keeps upper-case mangled sequences in auto mode', function () {
    expect(mangleName('xx\\x2Fyy', 'auto')).to.equal('xx\\x2Fyy');
  });

  it('escapes a lone backslash in auto mode', function () {
    expect(mangleName('a\\b', 'auto')).to.equal('a\\x5cb');
  });

  it('rejects double mangling in auto mode', function () {
    expect(() => mangleName('xx\\x5cx20yy', 'auto'))
      .to.throw(DmError)
      .with.property('code', 'ERR_DM_INVALID_NAME');
  });

  it('escapes the backslash in hex mode', function () {
    expect(hexBytes(mangleName('xx\\x20yy', 'hex'))).to.equal('78 78 5c 78 35 63 78 32 30 79 79');
  });

  it('escapes a space in hex mode', function () {
    expect(mangleName('xx yy', 'hex')).to.equal('xx\\x20yy');
  });

  it('accepts double mangling in hex mode', function () {
    expect(mangleName('a\\x5cx', 'hex')).to.equal('a\\x5cx5cx');
  });

  it('leaves names alone in none mode', function () {
    expect(mangleName('xx yy\\x5cx', 'none')).to.equal('xx yy\\x5cx');
  });
});

describe('demangleName', function () {
  it('decodes an escaped space', function () {
    expect(demangleName('xx\\x20yy')).to.equal('xx yy');
  });

  it('decodes UTF-8 byte sequences', function () {
    expect(demangleName('\\xc3\\xa4\\xe2\\x82\\xac')).to.equal('\u00e4\u20ac');
  });

  it('decodes upper-case hex', function () {
    expect(demangleName('a\\x2Fb')).to.equal('a/b');
  });

  it('keeps a name without escapes', function () {
    expect(demangleName('dmioctl-test-0')).to.equal('dmioctl-test-0');
  });

  it('keeps an incomplete escape', function () {
    expect(demangleName('a\\x2')).to.equal('a\\x2');
  });

  it('leaves names alone in none mode', function () {
    expect(demangleName('xx\\x20yy', 'none')).to.equal('xx\\x20yy');
  });

  it('reverses mangling in auto mode', function () {
    const name = 'a b\tc/\u00e4\\d';
    expect(demangleName(mangleName(name))).to.equal(name);
  });
});
