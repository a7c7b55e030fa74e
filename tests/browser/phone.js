// phone.js: one JsSIP phone per page (window.phone), with what the Python tests need to drive it.
//
// The tests call into it through driver.js: Phone.create({ws, uri, password}) makes the UA;
// register(), call(target), answer(), reject(status), terminate() act; next(type, ms) waits for
// the next event of a type (events are queued, so one that came before the wait is not lost);
// stats() reads RTCPeerConnection.getStats() of the current call; tone() measures the loudest
// frequency of what the phone hears (Web Audio), to tell whose audio it is.
'use strict';

(function () {
  const PC_CONFIG = { iceServers: [], rtcpMuxPolicy: 'require' };
  const MEDIA = { audio: true, video: false };

  class Phone {
    constructor(o) {
      this.events = [];
      this.waiters = [];
      this.session = null;
      this.ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(o.ws)],
        uri: o.uri,
        password: o.password,
        register: false,
        register_expires: o.expires || 600,
        // A dead server is a test failure, not something to retry for a minute.
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 4,
      });
      const ua = this.ua;
      ua.on('connected', () => this.emit('connected'));
      ua.on('disconnected', (e) => this.emit('disconnected', { error: !!(e && e.error) }));
      ua.on('registered', (e) => this.emit('registered', { status: e.response.status_code,
        contact: e.response.getHeader('Contact') }));
      ua.on('unregistered', () => this.emit('unregistered'));
      ua.on('registrationFailed', (e) => this.emit('registrationFailed', { cause: e.cause,
        status: e.response ? e.response.status_code : null }));
      ua.on('newRTCSession', (e) => this.track(e.session, e.originator, e.request));
      ua.start();
    }

    emit(type, detail) {
      const ev = Object.assign({ type }, detail || {});
      const i = this.waiters.findIndex((w) => w.type === type);
      if (i >= 0) {
        const w = this.waiters.splice(i, 1)[0];
        clearTimeout(w.timer);
        w.resolve(ev);
      } else {
        this.events.push(ev);
      }
    }

    // The next event of this type (queued or yet to come); rejects after ms.
    next(type, ms) {
      const i = this.events.findIndex((e) => e.type === type);
      if (i >= 0) return Promise.resolve(this.events.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { type, resolve };
        w.timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`no ${type} event within ${ms} ms; queued: ${JSON.stringify(this.events)}`));
        }, ms);
        this.waiters.push(w);
      });
    }

    track(session, originator, request) {
      this.session = session;
      const head = (name) => (request && request.getHeader(name)) || null;
      this.emit('newSession', { originator, from: head('From'), to: head('To'),
        callId: request ? request.call_id : null });
      session.on('peerconnection', (e) => this.play(e.peerconnection));
      if (session.connection) this.play(session.connection);
      session.on('progress', (e) => this.emit('progress', { originator: e.originator,
        status: e.response ? e.response.status_code : null }));
      session.on('accepted', (e) => this.emit('accepted', { originator: e.originator }));
      session.on('confirmed', (e) => this.emit('confirmed', { originator: e.originator }));
      session.on('ended', (e) => this.emit('ended', { originator: e.originator, cause: e.cause }));
      session.on('failed', (e) => this.emit('failed', { originator: e.originator, cause: e.cause,
        status: e.message && e.message.status_code ? e.message.status_code : null }));
    }

    // The remote audio plays in the page's <audio> (as a real phone page does); Chromium feeds
    // a remote WebRTC track into Web Audio only while an element plays it.
    play(pc) {
      pc.addEventListener('track', (e) => {
        const el = document.getElementById('remote');
        el.srcObject = e.streams[0] || new MediaStream([e.track]);
        el.play().catch(() => {});
        this.remote = el.srcObject;
      });
    }

    register() {
      this.ua.register();
    }

    call(target) {
      this.ua.call(target, { mediaConstraints: MEDIA, pcConfig: PC_CONFIG });
    }

    answer() {
      this.session.answer({ mediaConstraints: MEDIA, pcConfig: PC_CONFIG });
    }

    reject(status, reason) {
      this.session.terminate({ status_code: status, reason_phrase: reason });
    }

    // Hang up: CANCEL while ringing out, BYE once answered.
    terminate() {
      this.session.terminate();
    }

    async stats() {
      const pc = this.session && this.session.connection;
      if (!pc) return null;
      const report = await pc.getStats();
      const out = { inbound: null, outbound: null, pair: null, dtls: null, ice: pc.iceConnectionState,
        remoteCandidate: null, codec: null };
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          out.inbound = { packetsReceived: s.packetsReceived, bytesReceived: s.bytesReceived,
            packetsLost: s.packetsLost, totalAudioEnergy: s.totalAudioEnergy || 0 };
          const codec = s.codecId && report.get(s.codecId);
          if (codec) out.codec = codec.mimeType;
        } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
          out.outbound = { packetsSent: s.packetsSent, bytesSent: s.bytesSent };
        } else if (s.type === 'transport') {
          out.dtls = s.dtlsState;
          const pair = s.selectedCandidatePairId && report.get(s.selectedCandidatePairId);
          if (pair) {
            out.pair = pair.state;
            const rc = report.get(pair.remoteCandidateId);
            if (rc) out.remoteCandidate = { address: rc.address || rc.ip, port: rc.port };
          }
        }
      });
      return out;
    }

    // The loudest frequency (Hz) in what the phone hears over ms milliseconds, and the level
    // of that peak (dB): an analyser on the remote stream, peaks counted per frame.
    async tone(ms) {
      if (!this.remote) return null;
      const ctx = new AudioContext();
      await ctx.resume();
      const src = ctx.createMediaStreamSource(this.remote);
      const an = ctx.createAnalyser();
      an.fftSize = 4096;
      src.connect(an);
      const bins = new Float32Array(an.frequencyBinCount);
      const votes = new Map();
      let best = -Infinity;
      const end = Date.now() + ms;
      while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        an.getFloatFrequencyData(bins);
        let k = 1;
        for (let i = 2; i < bins.length; i++) if (bins[i] > bins[k]) k = i;
        if (bins[k] > -70) {
          const hz = Math.round((k * ctx.sampleRate) / an.fftSize);
          votes.set(hz, (votes.get(hz) || 0) + 1);
          best = Math.max(best, bins[k]);
        }
      }
      await ctx.close();
      let hz = 0;
      let n = 0;
      votes.forEach((v, f) => {
        if (v > n) { n = v; hz = f; }
      });
      return { hz, frames: n, peakDb: best === -Infinity ? null : Math.round(best) };
    }

    stop() {
      this.ua.stop();
    }
  }

  window.Phone = {
    create(o) {
      if (window.phone) window.phone.stop();
      if (o.debug) JsSIP.debug.enable('JsSIP:*');
      window.phone = new Phone(o);
      return true;
    },
  };
  window.phoneReady = true;
})();
