// Drives UNLOQ's published Node.js client (npm unloq, installed by the test
// into a temporary directory, never kept in this repository) against a
// running countersign. The Go test plays the user's phone and decides each
// approval as the step printed before it says. Every line printed is
// "step NAME ok" or "step NAME FAIL reason"; the exit code is the number of
// failures.
'use strict';
var crypto = require('crypto');
var http = require('http');
var querystring = require('querystring');
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

// listenForWebhook receives countersign's deliveries in UNLOQ's format on
// UNLOQ_HOOK_ADDR and checks the first with verifySign as a UNLOQ
// integrator's receiver does: the signature header, the path with its
// query, and the form fields. The client verifies with the API secret it
// was configured with, here the subscription's secret.
function listenForWebhook() {
  var verifier = new unloq.Api({ key: env.UNLOQ_KEY, secret: env.UNLOQ_HOOK_SECRET, gateway: env.UNLOQ_GATEWAY });
  var hp = env.UNLOQ_HOOK_ADDR.split(':');
  return new Promise(function (resolve, reject) {
    var checked = false, done;
    var received = new Promise(function (r) { done = r; });
    var srv = http.createServer(function (req, res) {
      var body = '';
      req.on('data', function (c) { body += c; });
      req.on('end', function () {
        res.end();
        if (checked) return;
        checked = true;
        var sig = req.headers['x-unloq-signature'] || '';
        // querystring.parse's object has no prototype, and verifySign calls
        // data.hasOwnProperty: a plain object, as body parsers give.
        var fields = Object.assign({}, querystring.parse(body));
        if (!fields.approval_id) fail('webhook-signed', 'no approval_id in ' + body);
        else if (verifier.verifySign(sig, req.url, fields)) ok('webhook-signed');
        else fail('webhook-signed', 'verifySign refused ' + sig + ' for ' + req.url + ' ' + body);
        // One byte of the signature changed.
        var i = Math.floor(sig.length / 2);
        var altered = sig.slice(0, i) + (sig.charAt(i) === 'A' ? 'B' : 'A') + sig.slice(i + 1);
        if (verifier.verifySign(altered, req.url, fields)) fail('webhook-altered', 'verifySign accepted ' + altered);
        else ok('webhook-altered');
        srv.close();
        done();
      });
    });
    srv.on('error', reject);
    // Wrapped, so that the caller gets the pending delivery, not its wait.
    srv.listen(Number(hp[1]), hp[0], function () { resolve({ received: received }); });
  });
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

var webhook;
listenForWebhook().then(function (hook) {
  webhook = hook.received;
  return run();
}).then(function () {
  var wait = new Promise(function (r) { setTimeout(function () { fail('webhook-signed', 'no delivery within 20 s'); r(); }, 20000).unref(); });
  return Promise.race([webhook, wait]);
}).then(function () { process.exit(failures); }, function (e) { console.log('step run FAIL ' + e.stack); process.exit(failures + 1); });
