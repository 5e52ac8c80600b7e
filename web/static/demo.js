// The demo page: one row per recording, with the call SIDs that reach it, and
// a wavesurfer.js player that draws the recording's peaks (computed by the
// worker, served by nginx) before a single audio byte is fetched. The <audio>
// element has preload="none": nothing is downloaded until play, and a click on
// the waveform seeks, so playing fetches from there with a Range request
// (206 from nginx) instead of the whole file.
"use strict";

const PLACED_KEY = "recording-cache-demo:placed"; // placed calls survive a reload
const MAX_PLACED = 25;
const LANE_HEIGHT = 48; // px; the .lane rule in demo.html matches it
// Twilio records a two-party call with each party on its own channel; the
// simulator puts the agent on the first and the customer on the second.
const LANES = [
  {name: "agent", wave: "#7ea6d8", progress: "#2f6db5"},
  {name: "customer", wave: "#e3a07f", progress: "#c0562b"},
];
const MONO = {name: "mixed", wave: "#999", progress: "#444"};
// Which of the items that reach one recording tells its status.
const RANK = {cached: 5, downloading: 4, pending: 3, failed: 2, absent: 2, unknown: 0};

const body = document.getElementById("recordings");
const message = document.getElementById("message");
const rows = new Map(); // key (RecordingSid, or the asked SID until it is known) -> row
let placed = loadPlaced();
let wavesurferModule = null;

function loadPlaced() {
  try {
    const list = JSON.parse(localStorage.getItem(PLACED_KEY) || "[]");
    return Array.isArray(list) ? list.filter((p) => p && p.play) : [];
  } catch (error) {
    return [];
  }
}

function savePlaced() {
  placed = placed.slice(0, MAX_PLACED);
  try {
    localStorage.setItem(PLACED_KEY, JSON.stringify(placed));
  } catch (error) { /* private mode: the rows last until reload */ }
}

function placedFor(sid) {
  return placed.find((p) => p.play === sid || p.recording_sid === sid || (p.calls || []).includes(sid));
}

function code(text) {
  const element = document.createElement("code");
  element.textContent = text;
  return element;
}

function seconds(value) {
  if (value == null || !isFinite(value)) return "";
  const whole = Math.round(value);
  return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
}

function rowFor(key, play, atTop) {
  let row = rows.get(key);
  if (row) return row;
  const tr = document.getElementById("row").content.firstElementChild.cloneNode(true);
  tr.dataset.sid = play;
  if (key.startsWith("RE")) tr.dataset.recording = key;
  tr.querySelector(".sid").textContent = play;
  tr.querySelector("audio").dataset.sid = play;
  row = {key, play, tr, calls: new Set(), audio: tr.querySelector("audio"), peaks: "none", retryAt: 0};
  rows.set(key, row);
  if (atTop) body.prepend(tr); else body.append(tr);
  return row;
}

function showCalls(row, sids) {
  let changed = false;
  for (const sid of sids) {
    if (sid && !row.calls.has(sid)) { row.calls.add(sid); changed = true; }
  }
  if (!changed) return;
  const cell = row.tr.querySelector(".calls");
  cell.replaceChildren(...[...row.calls].map(code));
  cell.title = [...row.calls].join(", ");
}

function showPlaced(entry, atTop) {
  const row = rowFor(entry.recording_sid || entry.play, entry.play, atTop);
  showCalls(row, entry.calls || []);
  if (entry.recording_sid) row.tr.querySelector(".recording").textContent = entry.recording_sid;
  if (!row.tr.querySelector(".status").textContent) row.tr.querySelector(".status").textContent = "placed";
}

// One response holds an item per asked SID (the SID a placed call plays by and
// its recording) and per recent recording: group them by recording.
function render(items) {
  const groups = new Map();
  for (const item of items) {
    const hint = placedFor(item.sid);
    const key = item.recording_sid || (hint && hint.recording_sid) || item.sid;
    if (!groups.has(key)) groups.set(key, {key, hint, items: []});
    groups.get(key).items.push(item);
  }
  for (const group of [...groups.values()].reverse()) {
    const play = group.hint ? group.hint.play : group.items[0].sid;
    update(rowFor(group.key, play, true), group);
  }
}

function update(row, group) {
  const items = group.items;
  const best = items.reduce((a, b) => ((RANK[b.status] || 0) > (RANK[a.status] || 0) ? b : a));
  const player = items.find((item) => item.sid === row.play) || best;
  const facts = items.find((item) => item.status === "cached") || best;
  const tr = row.tr;
  tr.querySelector(".recording").textContent = facts.recording_sid || group.key;
  showCalls(row, [...(group.hint ? group.hint.calls : []), ...items.flatMap((item) => item.calls || [])]);
  const status = tr.querySelector(".status");
  status.textContent = best.status + (best.error_code ? " (" + best.error_code + ")" : "");
  status.className = "status status-" + best.status;
  tr.querySelector(".bytes").textContent = facts.bytes == null ? "" : facts.bytes;
  tr.querySelector(".source").textContent = facts.source || "";
  tr.querySelector(".channels").textContent = facts.channels == null ? "" : facts.channels;
  tr.querySelector(".duration").textContent = seconds(facts.duration_s);
  // Only a cached recording gets a source: <audio preload="none"> then
  // fetches nothing until play, and play goes straight to nginx (206).
  if (player.status === "cached" && !row.audio.getAttribute("src")) {
    row.audio.src = player.url;
  }
  if (row.audio.getAttribute("src")) drawWhenReady(row, player, facts);
}

async function drawWhenReady(row, player, facts) {
  if (row.peaks === "loading" || row.peaks === "drawn" || row.peaks === "unavailable") return;
  const note = row.tr.querySelector(".note");
  if (facts.peaks === "unavailable") {
    row.peaks = "unavailable";
    note.textContent = "no waveform: " + (facts.peaks_error || "the recording could not be decoded");
    return;
  }
  const url = player.peaks_url || facts.peaks_url;
  if (!url || Date.now() < row.retryAt) return;
  row.peaks = "loading";
  try {
    const response = await fetch(url, {cache: "no-store"});
    if (response.status === 202) { // computing: ask again when it says
      const after = Number(response.headers.get("Retry-After")) || 1;
      row.retryAt = Date.now() + after * 1000;
      row.peaks = "waiting";
      note.textContent = "computing the waveform…";
      return;
    }
    if (!response.ok) {
      const reason = (await response.json().catch(() => ({}))).reason || response.statusText;
      row.peaks = "unavailable";
      note.textContent = "no waveform: " + reason;
      return;
    }
    const waveform = await response.json();
    const WaveSurfer = await loadWaveSurfer();
    if (!WaveSurfer) {
      row.peaks = "unavailable";
      note.textContent = "no waveform: wavesurfer.js is not installed (make install)";
      return;
    }
    draw(row, WaveSurfer, waveform, facts);
    row.peaks = "drawn";
    note.textContent = "";
  } catch (error) {
    row.peaks = "waiting";
    row.retryAt = Date.now() + 2000;
    note.textContent = "waveform: " + error;
  }
}

async function loadWaveSurfer() {
  wavesurferModule = wavesurferModule || import("../vendor/wavesurfer.js").then((m) => m.default, () => null);
  return wavesurferModule;
}

// audiowaveform's JSON (version 2) interleaves, per pixel, each channel's min
// and max as 8-bit integers: [c0min, c0max, c1min, c1max, ...]. wavesurfer
// wants one array of floats in -1..1 per channel; it draws each pixel's
// largest magnitude, so the min/max pairs go in as they are.
function channelPeaks(waveform) {
  const channels = waveform.channels || 1;
  const scale = 2 ** ((waveform.bits || 8) - 1);
  const lanes = Array.from({length: channels}, () => new Float32Array(waveform.length * 2));
  for (let pixel = 0; pixel < waveform.length; pixel++) {
    for (let channel = 0; channel < channels; channel++) {
      const at = (pixel * channels + channel) * 2;
      lanes[channel][pixel * 2] = waveform.data[at] / scale;
      lanes[channel][pixel * 2 + 1] = waveform.data[at + 1] / scale;
    }
  }
  return lanes;
}

function draw(row, WaveSurfer, waveform, facts) {
  const peaks = channelPeaks(waveform);
  const duration = facts.duration_s || (waveform.length * waveform.samples_per_pixel) / waveform.sample_rate;
  const split = peaks.length > 1;
  const styles = split ? LANES.slice(0, peaks.length) : [MONO];
  // One scale for every lane, so a quiet party stays quiet beside a loud one.
  let loudest = 0;
  for (const lane of peaks) for (const value of lane) loudest = Math.max(loudest, Math.abs(value));
  const labels = row.tr.querySelector(".lanes");
  labels.replaceChildren(...styles.map((style, channel) => {
    const lane = document.createElement("div");
    lane.className = "lane " + (split ? "ch" + channel : "mono");
    lane.dataset.channel = channel;
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = style.name;
    lane.append(name);
    const talk = facts.talk_s && facts.talk_s[channel];
    const silence = facts.silence_s && facts.silence_s[channel];
    if (talk != null) {
      const detail = document.createElement("div");
      detail.className = "talk";
      detail.textContent = "talk " + seconds(talk) + (silence != null ? " · silence " + seconds(silence) : "");
      lane.append(detail);
    }
    return lane;
  }));
  row.tr.querySelector(".player").hidden = false;
  const url = row.audio.getAttribute("src");
  if (facts.bytes && url && canFeed(url)) feed(row.audio, url, facts.bytes, duration, () => row.seekTo || 0);
  row.wavesurfer = WaveSurfer.create({
    container: row.tr.querySelector(".waveform"),
    media: row.audio, // preload="none": the peaks draw, the audio waits for play
    peaks,
    duration,
    height: LANE_HEIGHT,
    splitChannels: split ? styles.map((s) => ({waveColor: s.wave, progressColor: s.progress})) : undefined,
    waveColor: styles[0].wave,
    progressColor: styles[0].progress,
    cursorColor: "#222",
    barWidth: 2,
    barGap: 1,
    normalize: loudest > 0,
    maxPeak: loudest || undefined,
  });
  row.wavesurfer.on("ready", () => { row.tr.dataset.waveform = "drawn"; });
  row.wavesurfer.on("interaction", (time) => { row.seekTo = time; });
  row.tr.dataset.lanes = String(peaks.length);
  controls(row, duration);
}

// The audio is fed a few seconds ahead of the playhead, one Range request at a
// time (Media Source Extensions), so a player reads what it plays: given the
// file itself, Chromium reads at least 2 MiB ahead and, near the server, all
// of it. A constant-bitrate MP3 (Twilio's, the simulator's) maps time to bytes
// linearly; a WAV, or a browser without MSE for MP3, gets the file as before.
const AHEAD_SECONDS = 10;
const CHUNK_SECONDS = 5;

function canFeed(url) {
  return new URL(url, location.href).pathname.endsWith(".mp3") &&
    "MediaSource" in window && MediaSource.isTypeSupported("audio/mpeg");
}

// ``startAt()``: where a click before the first play put the playhead. With
// preload="none" the element attaches the MediaSource only on play, and
// loading resets a position set before that.
function feed(audio, url, bytes, duration, startAt) {
  const source = new MediaSource();
  const rate = bytes / duration; // bytes a second
  const state = {buffer: null, from: -1, next: 0, busy: false, wanted: false, controller: null};
  audio.src = URL.createObjectURL(source);
  source.addEventListener("sourceopen", () => {
    source.duration = duration;
    state.buffer = source.addSourceBuffer("audio/mpeg");
    state.buffer.addEventListener("updateend", () => { state.busy = false; pump(); });
    const wanted = startAt();
    if (wanted > 0 && audio.currentTime === 0) audio.currentTime = wanted; // applied once data arrives
    reposition(wanted > 0 ? wanted : audio.currentTime);
    pump();
  }, {once: true});

  function ahead() {
    const ranges = audio.buffered;
    for (let i = 0; i < ranges.length; i++) {
      if (ranges.start(i) <= audio.currentTime + 0.05 && audio.currentTime <= ranges.end(i)) {
        return ranges.end(i) - audio.currentTime;
      }
    }
    return 0;
  }

  // After a seek: read on from the end of what is buffered there, or from the byte the time maps to.
  function reposition(at = audio.currentTime) {
    if (!state.buffer) return;
    if (state.controller) state.controller.abort();
    state.controller = null;
    if (state.buffer.updating) state.buffer.abort();
    state.busy = false;
    const from = at + ahead();
    state.next = state.from = Math.min(bytes, Math.floor(from * rate));
    state.buffer.timestampOffset = state.next / rate;
  }

  async function pump() {
    if (!state.buffer || state.busy || state.buffer.updating || !state.wanted) return;
    if (state.next >= bytes) {
      if (source.readyState === "open" && ahead() > 0) source.endOfStream();
      return;
    }
    if (ahead() >= AHEAD_SECONDS) return;
    const start = state.next;
    const end = Math.min(bytes, start + Math.ceil(rate * CHUNK_SECONDS)) - 1;
    const controller = (state.controller = new AbortController());
    state.busy = true;
    try {
      const response = await fetch(url, {headers: {Range: `bytes=${start}-${end}`}, signal: controller.signal});
      if (response.status !== 206) throw new Error("answered " + response.status);
      const data = await response.arrayBuffer();
      if (controller !== state.controller) return; // a seek moved on meanwhile
      state.next = end + 1;
      state.buffer.appendBuffer(data); // updateend pumps again
    } catch (error) {
      if (controller === state.controller) { state.busy = false; setTimeout(pump, 1000); }
    }
  }

  audio.addEventListener("play", () => {
    // wavesurfer keeps a click made before any data as a pending time, applied
    // once the element can play: the first request starts there, not at 0.
    if (!state.wanted && state.buffer && startAt() > 0) {
      audio.currentTime = startAt();
      reposition(startAt());
    }
    state.wanted = true;
    pump();
  });
  audio.addEventListener("timeupdate", pump);
  audio.addEventListener("seeking", () => {
    const target = Math.min(bytes, Math.floor((audio.currentTime + ahead()) * rate));
    if (Math.abs(target - state.from) < rate / 2) return; // the stream already starts there
    reposition();
    pump();
  });
}

// Before play the <audio> element knows no duration (it has fetched nothing),
// so its own controls would read 0:00 / 0:00: a button and the peaks'
// duration take their place.
function controls(row, duration) {
  const ws = row.wavesurfer;
  const bar = row.tr.querySelector(".controls");
  const toggle = bar.querySelector(".toggle");
  const time = bar.querySelector(".time");
  const show = (at) => { time.textContent = seconds(at) + " / " + seconds(duration); };
  toggle.addEventListener("click", () => ws.playPause());
  ws.on("play", () => { toggle.textContent = "\u25ae\u25ae pause"; });
  ws.on("pause", () => { toggle.textContent = "\u25b6 play"; });
  ws.on("timeupdate", show);
  ws.on("interaction", show);
  show(0);
  row.audio.controls = false;
  row.audio.hidden = true; // it still plays: wavesurfer drives it
  bar.hidden = false;
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const sids = placed.flatMap((p) => [p.play, p.recording_sid]).filter(Boolean);
  const query = [...new Set(sids)].map((sid) => "sid=" + encodeURIComponent(sid)).join("&");
  try {
    const response = await fetch("/demo/recordings.json?" + query, {cache: "no-store"});
    if (response.ok) render((await response.json()).recordings);
  } catch (error) {
    message.textContent = "refresh failed: " + error;
  } finally {
    refreshing = false;
  }
}

function announce(entry, kind) {
  const parts = [];
  if (entry.conference_sid) {
    parts.push("placed conference ", code(entry.conference_sid));
  } else {
    parts.push("placed call ", code(entry.call_sid));
    if (entry.child_call_sid) parts.push(" with child leg ", code(entry.child_call_sid));
  }
  parts.push(": recording ", code(entry.recording_sid));
  if (kind === "absent") parts.push(" (Twilio ends it absent)");
  parts.push(", at the top of the table, plays by ", code(entry.play));
  message.replaceChildren(...parts);
}

document.getElementById("place-call").addEventListener("click", async () => {
  const kind = document.getElementById("kind").value;
  const child = kind === "child";
  message.textContent = "placing a call…";
  try {
    const response = await fetch("/_sim/place-call", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({child: child, kind: child ? "call" : kind, size: 1048576, throughput: 524288}),
    });
    const call = await response.json();
    if (!response.ok) { message.textContent = call.error || response.statusText; return; }
    // A conference's recording is reached by the ConferenceSid; a <Dial>'s
    // by the parent call and the child leg alike.
    const calls = call.conference_sid ? [call.conference_sid] : [call.call_sid, call.child_call_sid];
    const entry = {
      play: call.conference_sid || (child ? call.child_call_sid : call.recording_sid),
      recording_sid: call.recording_sid,
      calls: calls.filter(Boolean),
      call_sid: call.call_sid,
      child_call_sid: child ? call.child_call_sid : null,
      conference_sid: call.conference_sid,
    };
    placed = [entry, ...placed.filter((p) => p.recording_sid !== entry.recording_sid)];
    savePlaced();
    showPlaced(entry, true);
    announce(entry, kind);
  } catch (error) {
    message.textContent = "placing the call failed: " + error;
    return;
  }
  refresh();
});

for (const entry of placed) showPlaced(entry, false); // newest first, as saved
refresh();
setInterval(refresh, 1000);
