// Drives UNLOQ's published Node.js client (npm unloq, installed by the test
// into a temporary directory, never kept in this repository) against a
// running countersign. The Go test plays the user's phone and decides each
// approval as the step printed before it says. Every line printed is
// "step NAME ok" or "step NAME FAIL reason"; the exit code is the number of
// failures.
'use strict';
var crypto = require('crypto');
var unloq = require('unloq');

var env = process.env;
var api = new unloq.Api({ key: env.UNLOQ_KEY, gateway: env.UNLOQ_GATEWAY });
var failures = 0;

function ok(name) { console.log('step ' + name + ' ok'); }
function fail(name, why) { failures++; console.log('step ' + name + ' FAIL ' + why); }
// announce tells the Go phone what to answer to the next approval of email.
function announce(email, decision) { console.log('phone ' + email + ' ' + decision); }

// totp is the current RFC 6238 code (SHA-1, 6 digits, 30 s) of the base32
// secret the Go test read from bob's activation (its totpURI), as bob's
// authenticator app would show it.
function totp(secret) {
  var alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', bits = '', bytes = [];
  secret.replace(/=+$/, '').toUpperCase().split('').forEach(function (ch) {
    bits += ('00000' + alphabet.indexOf(ch).toString(2)).slice(-5);
  });
  for (var i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  var counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  var mac = crypto.createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
  var off = mac[mac.length - 1] & 15;
  var n = (mac.readUInt32BE(off) & 0x7fffffff) % 1000000;
  return ('000000' + n).slice(-6);
}

function expectReject(name, p, check) {
  return p.then(function (v) { fail(name, 'resolved ' + JSON.stringify(v)); },
    function (e) { var why = check(e); if (why) fail(name, why + ' (' + e.code + ': ' + e.message + ')'); else ok(name); });
}

function run() {
  var bob = 'bob@example.com', carol = 'carol@example.com';
  // The wait that runs out: carol's phone never answers.
  var timeout = expectReject('timeout', api.authenticate({ email: carol }), function (e) {
    return e.code === 'TIMEOUT' ? '' : 'want code TIMEOUT';
  });
  var pendingSeen = false, token;
  announce(bob, 'approve');
  var p = api.authenticate({ email: bob });
  p.on('pending', function () { pendingSeen = true; });
  return p.then(function (res) {
    if (!pendingSeen) return fail('events-approved', 'no pending event before the result');
    if (!res || res.unloq_id !== 'bob' || typeof res.token !== 'string' || !res.token) return fail('events-approved', JSON.stringify(res));
    token = res.token;
    ok('events-approved');
  }, function (e) { fail('events-approved', e.code + ' ' + e.message); })
    .then(function () {
      return api.tokenData(token, { sid: 'session-1', duration: 3600 }).then(function (d) {
        if (!d || d.unloq_id !== 'bob' || d.email !== bob || d.first_name !== 'Bob' || d.last_name !== 'Jones') return fail('token-data', JSON.stringify(d));
        ok('token-data');
      }, function (e) { fail('token-data', e.code + ' ' + e.message); });
    })
    .then(function () {
      return expectReject('token-data-again', api.tokenData(token), function (e) {
        return e.code === 'TOKEN.INVALID' ? '' : 'want code TOKEN.INVALID';
      });
    })
    .then(function () {
      announce(bob, 'approve');
      return api.authenticate({ email: bob }, { events: false }).then(function (res) {
        if (!res || res.unloq_id !== 'bob' || !res.token) return fail('plain-approved', JSON.stringify(res));
        ok('plain-approved');
      }, function (e) { fail('plain-approved', e.code + ' ' + e.message); });
    })
    .then(function () {
      announce(bob, 'deny');
      return expectReject('denied', api.authenticate({ email: bob }), function (e) {
        return e.code === 'DENIED' && e.security_field === 'token' ? '' : 'want DENIED with security_field token';
      });
    })
    .then(function () {
      return expectReject('token-required', api.authenticate({ email: bob }), function (e) {
        return e.code === 'APPROVAL.TOKEN' ? '' : 'want code APPROVAL.TOKEN';
      });
    })
    .then(function () {
      // With the code of bob's authenticator the push goes ahead again.
      announce(bob, 'approve');
      return api.authenticate({ email: bob, token: totp(env.UNLOQ_TOTP_SECRET) }).then(function (res) {
        if (!res || res.unloq_id !== 'bob' || !res.token) return fail('otp-then-approved', JSON.stringify(res));
        ok('otp-then-approved');
      }, function (e) { fail('otp-then-approved', e.code + ' ' + e.message); });
    })
    .then(function () { return timeout; });
}

run().then(function () { process.exit(failures); }, function (e) { console.log('step run FAIL ' + e.stack); process.exit(failures + 1); });
