// vp3d web page: upload a clip, follow its job, see the skeleton beside the video, download the files.
// The skeleton is loaded from the job's own GLB through three.js's GLTFLoader: the page proves the file.
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem("vp3d-token") || "", events: null, view: null };
window.vp3d = { ready: false, time: 0, duration: 0, playing: false, job: null }; // read by the tests

function authHeaders() { return state.token ? { Authorization: `Bearer ${state.token}` } : {}; }
function withToken(url) { return state.token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(state.token)}` : url; }

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) { $("auth").hidden = false; throw new Error("this service needs a token"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function show(section) {
  for (const id of ["upload", "job", "result"]) $(id).hidden = !section.includes(id);
}

// ---- upload --------------------------------------------------------------------------------
function upload(file) {
  $("upload-error").textContent = "";
  const form = new FormData();
  for (const id of ["rig", "root_motion", "feet"]) form.append(id, $(id).value);
  form.append("formats", "motion,bvh,glb,npz");
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  const bar = $("upload-progress");
  bar.hidden = false;
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
  xhr.onload = () => {
    bar.hidden = true;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 401) $("auth").hidden = false;
    if (xhr.status >= 400) { $("upload-error").textContent = body.detail || `upload failed (HTTP ${xhr.status})`; return; }
    history.pushState({}, "", `/jobs/${body.id}`);
    route();
  };
  xhr.onerror = () => { bar.hidden = true; $("upload-error").textContent = "the upload did not reach the server"; };
  xhr.send(form);
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});
$("save-token").addEventListener("click", () => {
  state.token = $("token").value.trim();
  localStorage.setItem("vp3d-token", state.token);
  $("auth").hidden = true;
  route();
});

// ---- a job ---------------------------------------------------------------------------------
function describe(job) {
  if (job.state === "queued") return `queued: position ${job.queue_position}`;
  if (job.state === "running") return `${job.stage}: ${Math.round(100 * job.progress)}%`;
  if (job.state === "done") return `done in ${(job.timings.convert_s || 0).toFixed(1)} s`;
  return job.state;
}

function follow(id) {
  if (state.events) state.events.close();
  show(["job"]);
  $("job-error").textContent = "";
  const events = new EventSource(withToken(`/api/jobs/${id}/events`));
  state.events = events;
  events.onmessage = (e) => {
    const job = JSON.parse(e.data);
    window.vp3d.job = job;
    $("job-name").textContent = job.name;
    $("job-status").textContent = describe(job);
    $("job-progress").value = job.progress;
    if (job.state === "done") { events.close(); showResult(job); }
    if (job.state === "failed" || job.state === "cancelled") { events.close(); $("job-error").textContent = job.error || job.state; }
  };
  events.addEventListener("gone", () => { events.close(); $("job-error").textContent = "this job no longer exists"; });
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) {
      api(`/api/jobs/${id}`).catch((err) => { $("job-error").textContent = err.message; });
    }
  };
}

// ---- the result: video and skeleton side by side, in sync ----------------------------------
async function showResult(job) {
  show(["job", "result"]);
  const list = $("files");
  list.replaceChildren();
  for (const name of job.files) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = withToken(`/api/jobs/${job.id}/files/${encodeURIComponent(name)}`);
    a.download = name; a.textContent = name;
    li.append(a); list.append(li);
  }
  $("video").src = withToken(`/api/jobs/${job.id}/video`);
  const glb = job.files.find((n) => n.endsWith(".glb"));
  if (!glb) { $("job-error").textContent = "this job made no GLB to show"; return; }
  const response = await fetch(`/api/jobs/${job.id}/files/${encodeURIComponent(glb)}`, { headers: authHeaders() });
  const gltf = await new GLTFLoader().parseAsync(await response.arrayBuffer(), "");
  buildView(gltf);
}

function buildView(gltf) {
  if (state.view) state.view.dispose();
  const host = $("view");
  host.replaceChildren();
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  host.append(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x1b1d23);
  const camera = new THREE.PerspectiveCamera(45, 4 / 3, 0.05, 200);
  camera.position.set(1.6, 1.4, 2.6);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0.9, 0);
  controls.update();
  scene.add(new THREE.GridHelper(10, 20, 0x55606e, 0x2c323c));
  scene.add(new THREE.HemisphereLight(0xffffff, 0x333344, 2));
  scene.add(gltf.scene);
  const skeleton = new THREE.SkeletonHelper(gltf.scene);
  skeleton.material.linewidth = 2;
  scene.add(skeleton);
  const bones = [];
  gltf.scene.traverse((o) => { if (o.isBone) bones.push(o); });
  const joints = new THREE.Group();
  for (const bone of bones) {
    const dot = new THREE.Mesh(new THREE.SphereGeometry(0.025, 10, 8), new THREE.MeshStandardMaterial({ color: 0x7fc4ff }));
    dot.userData.bone = bone;
    joints.add(dot);
  }
  scene.add(joints);
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const clip = gltf.animations[0];
  mixer.clipAction(clip).play();
  const duration = clip ? clip.duration : 0;
  // The root trail: the hips sampled over the clip, on the floor.
  const root = bones[0];
  const points = [];
  const position = new THREE.Vector3();
  for (let i = 0; i <= 200 && duration > 0; i++) {
    mixer.setTime((duration * i) / 200);
    gltf.scene.updateMatrixWorld(true);
    root.getWorldPosition(position);
    points.push(new THREE.Vector3(position.x, 0.005, position.z));
  }
  const trail = new THREE.Line(new THREE.BufferGeometry().setFromPoints(points), new THREE.LineBasicMaterial({ color: 0x3ddc84 }));
  scene.add(trail);

  const video = $("video");
  let time = 0, playing = false, last = performance.now(), frame = 0;
  const scrub = $("scrub");
  scrub.max = String(duration);
  const setTime = (t) => {
    time = Math.min(Math.max(t, 0), duration);
    mixer.setTime(time);
    gltf.scene.updateMatrixWorld(true);
    for (const dot of joints.children) dot.userData.bone.getWorldPosition(dot.position);
    scrub.value = String(time);
    $("clock").textContent = `${time.toFixed(2)} s`;
    if (Math.abs(video.currentTime - time) > 0.15 && video.readyState >= 1) video.currentTime = time;
    Object.assign(window.vp3d, { time, duration, playing });
  };
  const resize = () => {
    const w = host.clientWidth, h = host.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h; camera.updateProjectionMatrix();
  };
  const play = (on) => {
    playing = on;
    $("play").textContent = on ? "Pause" : "Play";
    if (on) { if (time >= duration) setTime(0); video.play().catch(() => {}); } else video.pause();
    window.vp3d.playing = on;
  };
  $("play").onclick = () => play(!playing);
  scrub.oninput = () => { play(false); setTime(Number(scrub.value)); };
  $("speed").onchange = () => { video.playbackRate = Number($("speed").value); };
  $("trail").onchange = () => { trail.visible = $("trail").checked; };
  const loop = (now) => {
    frame = requestAnimationFrame(loop);
    if (playing) {
      setTime(time + ((now - last) / 1000) * Number($("speed").value));
      if (time >= duration) play(false);
    }
    last = now;
    resize();
    controls.update();
    renderer.render(scene, camera);
  };
  setTime(0);
  frame = requestAnimationFrame(loop);
  state.view = { dispose: () => { cancelAnimationFrame(frame); renderer.dispose(); controls.dispose(); } };
  window.vp3d.ready = true;
  window.vp3d.bones = bones.length;
}

// ---- routing: / uploads, /jobs/ID is a job's own page (refresh, back/forward, shared links) ----
function route() {
  const match = location.pathname.match(/^\/jobs\/([A-Za-z0-9_-]+)$/);
  window.vp3d.ready = false;
  if (match) { follow(match[1]); return; }
  if (state.events) state.events.close();
  show(["upload"]);
}
window.addEventListener("popstate", route);
route();
