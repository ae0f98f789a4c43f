// authd: passkeys (WebAuthn). Each form.passkey-form names its "begin" URL
// (answers the options as JSON) and a mode: "create" registers a passkey,
// "get" uses one. The browser's answer goes into the form's hidden
// "credential" field and the form is posted as usual; the server answers
// with a page. Without this script (or WebAuthn) the forms say so.
(function () {
  'use strict';
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  function toB64u(buf) {
    var bytes = new Uint8Array(buf), s = '';
    for (var i = 0; i < bytes.length; i++) {
      s += String.fromCharCode(bytes[i]);
    }
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function fromB64u(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) {
      s += '=';
    }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }
  function ids(list) {
    (list || []).forEach(function (c) { c.id = fromB64u(c.id); });
  }
  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: toB64u(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      if (r.getTransports) {
        out.response.transports = r.getTransports();
      }
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle) {
        out.response.userHandle = toB64u(r.userHandle);
      }
    }
    return JSON.stringify(out);
  }
  document.querySelectorAll('form.passkey-form').forEach(function (form) {
    var note = form.querySelector('.passkey-nojs');
    if (note) {
      note.hidden = true;
    }
    var errBox = form.querySelector('.passkey-error');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (errBox) {
        errBox.hidden = true;
      }
      var body = new URLSearchParams();
      body.set('csrf', form.elements.csrf.value);
      fetch(form.dataset.begin, {
        method: 'POST', body: body, credentials: 'same-origin', headers: { Accept: 'application/json' }
      }).then(function (res) {
        return res.json().then(function (j) {
          if (!res.ok) {
            throw new Error(j.error || ('HTTP ' + res.status));
          }
          return j;
        });
      }).then(function (opts) {
        var pk = opts.publicKey;
        pk.challenge = fromB64u(pk.challenge);
        if (form.dataset.mode === 'create') {
          pk.user.id = fromB64u(pk.user.id);
          ids(pk.excludeCredentials);
          return navigator.credentials.create({ publicKey: pk });
        }
        ids(pk.allowCredentials);
        return navigator.credentials.get({ publicKey: pk });
      }).then(function (cred) {
        form.elements.credential.value = encode(cred);
        form.submit();
      }).catch(function (e) {
        if (errBox) {
          errBox.textContent = e && e.message ? e.message : String(e);
          errBox.hidden = false;
        }
      });
    });
  });
}());
