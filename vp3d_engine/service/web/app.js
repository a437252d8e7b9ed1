// vp3d web page: upload a clip, follow its job, see the skeleton beside the video, download the files.
// The skeleton is loaded from the job's own GLB through three.js's GLTFLoader: the page proves the file.
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem("vp3d-token") || "", events: null, view: null, pending: null };
window.vp3d = { ready: false, time: 0, duration: 0, playing: false, job: null }; // read by the tests

// The pipeline's stages in the words of someone who filmed a video.
const STAGES = {
  starting: "Starting", detect: "Finding the person in each frame", track: "Following the person",
  lift: "Lifting to 3D", world: "Solving the animation", solve: "Solving the animation", write: "Writing files",
};
// What each result file is for, by how its name ends (the longest ending first).
const FILES = [
  [".motion.npz", "vp3d Motion file, for the vp3d Blender add-on (File > Import > vp3d motion)"],
  ["_preview.mp4", "preview video: the skeleton drawn over your video"],
  [".npz", "3D joints and 2D keypoints, for programs (NumPy .npz)"],
  [".json", "3D joints and 2D keypoints, for programs (JSON)"],
  [".bvh", "BVH animation, for Blender, MotionBuilder, Maya and most 3D tools"],
  [".glb", "glTF binary skeleton and animation, for Blender, three.js, game engines (the view above)"],
  [".fbx", "FBX animation, for Unity, Unreal and Maya"],
];

function authHeaders() { return state.token ? { Authorization: `Bearer ${state.token}` } : {}; }
function withToken(url) { return state.token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(state.token)}` : url; }

function askForToken(message) {
  $("auth-message").textContent = message;
  $("auth").hidden = false;
  $("token").focus();
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    askForToken("This service needs a token (ask whoever runs it).");
    throw new Error("this service needs a token: enter it above");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

// Whether this browser may use the service: the token is asked for before a file is chosen.
async function checkAccess() {
  const response = await fetch("/api/backends", { headers: authHeaders() }).catch(() => null);
  if (response && response.status === 401) {
    askForToken(state.token ? "The saved token is not accepted any more; enter the current one."
      : "This service needs a token (ask whoever runs it).");
    return false;
  }
  $("auth").hidden = true;
  if (response && response.ok && !$("options").children.length) showOptions(await response.json());
  return true;
}

// The form's options, as the service defines them (GET /api/backends: the one definition of the
// options, with their choices, bounds and defaults): the Blender panel's set, the main three first.
const MAIN_OPTIONS = ["rig", "root_motion", "feet"];

function optionField(o) {
  const label = document.createElement("label");
  label.title = o.help;
  label.append(`${o.label} `);
  let input;
  if (o.choices) {
    input = document.createElement("select");
    // An integer that also takes words (person: 0..9 or "all"): the numbers first, then the words.
    const numbers = [];
    if (o.kind === "integer") {
      for (let n = o.low; n <= o.high; n++) numbers.push({ value: String(n), label: n === 0 ? "0: main subject" : String(n) });
    }
    for (const c of [...numbers, ...o.choices]) {
      const item = new Option(c.label || c.value, c.value, false, c.value === String(o.default));
      item.title = c.help || "";
      input.append(item);
    }
  } else {
    input = document.createElement("input");
    const numeric = o.kind === "number" || o.kind === "integer";
    input.type = numeric ? "number" : "text";
    if (numeric) {
      input.min = o.low;
      input.max = o.high;
      input.step = o.kind === "integer" ? "1" : "any";
    }
    input.placeholder = o.default === null ? "" : String(o.default);  // empty: the whole video
  }
  input.id = o.name;
  input.dataset.option = o.name;
  label.append(input);
  return label;
}

function showOptions(backends) {
  const offered = (backends.options || []).filter((o) => o.doors.includes("addon"));
  for (const o of offered) (MAIN_OPTIONS.includes(o.name) ? $("options") : $("options-more")).append(optionField(o));
}

function show(section) {
  for (const id of ["upload", "job", "result"]) $(id).hidden = !section.includes(id);
}

// ---- upload --------------------------------------------------------------------------------
function upload(file) {
  $("upload-error").textContent = "";
  state.pending = null;
  const form = new FormData();
  for (const field of document.querySelectorAll("[data-option]")) {
    if (field.value !== "") form.append(field.dataset.option, field.value);
  }
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
    if (xhr.status === 401) {  // keep the file: the user only enters the token, and it is sent
      state.pending = file;
      askForToken(`This service needs a token: enter it and ${file.name} is sent.`);
      $("upload-error").textContent = `${file.name} is waiting for the token (above).`;
      return;
    }
    if (xhr.status >= 400) {
      $("upload-error").textContent = body.detail || `the upload failed (HTTP ${xhr.status}); try again`;
      return;
    }
    history.pushState({}, "", `/jobs/${body.id}`);
    route();
  };
  xhr.onerror = () => { bar.hidden = true; $("upload-error").textContent = "the upload did not reach the server"; };
  xhr.send(form);
}

$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = "";  // the same file can be chosen again after an error
  if (file) upload(file);
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});
$("auth").addEventListener("submit", async (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem("vp3d-token", state.token);
  if (!(await checkAccess())) { $("auth-message").textContent = "That token is not accepted; check it and try again."; return; }
  if (state.pending) upload(state.pending); else route();
});
$("again").addEventListener("click", () => { history.pushState({}, "", "/"); route(); });

// ---- a job ---------------------------------------------------------------------------------
function describe(job) {
  if (job.state === "queued") return `Waiting in line (position ${job.queue_position})`;
  if (job.state === "running") return `${STAGES[job.stage] || "Working"}: ${Math.round(100 * job.progress)}%`;
  if (job.state === "done") return `Done in ${(job.timings.convert_s || 0).toFixed(1)} s`;
  if (job.state === "failed") return "The conversion failed";
  return "Cancelled";
}

// A job that has ended (or cannot be followed): no progress bar left standing, and a way on.
function ended(message) {
  $("job-progress").hidden = true;
  $("job-error").textContent = message || "";
  $("again").hidden = false;
}

function follow(id) {
  if (state.events) state.events.close();
  show(["job"]);
  $("job-error").textContent = "";
  $("job-progress").hidden = false;
  $("again").hidden = true;
  const events = new EventSource(withToken(`/api/jobs/${id}/events`));
  state.events = events;
  events.onmessage = (e) => {
    const job = JSON.parse(e.data);
    window.vp3d.job = job;
    $("job-name").textContent = job.name;
    $("job-status").textContent = describe(job);
    $("job-progress").value = job.progress;
    if (job.state === "done") { events.close(); ended(""); showResult(job); }
    if (job.state === "failed") { events.close(); ended(job.error || "no reason was given"); }
    if (job.state === "cancelled") { events.close(); ended(""); }
  };
  events.addEventListener("gone", () => { events.close(); ended("This job no longer exists (finished jobs expire)."); });
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) {
      api(`/api/jobs/${id}`).then(() => ended("Lost the connection to the server; reload the page to follow the job again."),
        (err) => ended(err.message));
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
    const about = document.createElement("span");
    about.className = "about";
    about.textContent = (FILES.find(([ending]) => name.endsWith(ending)) || ["", "a result file"])[1];
    const who = job.options && job.options.person === "all" && name.match(/\.p(\d+)\.[a-z0-9_.]+$/);
    if (who) about.textContent = `person ${who[1]}: ${about.textContent}`;
    else if (job.options && job.options.person === "all" && name.endsWith(".glb")) about.textContent += ", everyone";
    li.append(a, " ", about); list.append(li);
  }
  $("video").src = withToken(`/api/jobs/${job.id}/video`);
  const glb = job.files.find((n) => n.endsWith(".glb"));
  if (!glb) { $("job-error").textContent = "This job made no GLB file, so there is no 3D view; the files are below."; return; }
  const response = await fetch(`/api/jobs/${job.id}/files/${encodeURIComponent(glb)}`, { headers: authHeaders() });
  const gltf = await new GLTFLoader().parseAsync(await response.arrayBuffer(), "");
  buildView(gltf);
}

// Each person's colours: the skeleton's lines (SkeletonHelper's two ends of a bone), the joint dots
// and the root trail. The first are those a one-person view has always had (SkeletonHelper's own).
const PALETTE = [
  { lines: [0x0000ff, 0x00ff00], dot: 0x7fc4ff, trail: 0x3ddc84 },
  { lines: [0xff3d00, 0xffd400], dot: 0xffb347, trail: 0xff8c42 },
  { lines: [0xa000ff, 0xff4fd8], dot: 0xf08cff, trail: 0xd05cff },
  { lines: [0xff0033, 0xffa0a8], dot: 0xff7b72, trail: 0xff4d6d },
  { lines: [0x00a0a0, 0xa0f8ff], dot: 0x7ff5e8, trail: 0x2ec4b6 },
  { lines: [0xb0b000, 0xffffff], dot: 0xf5f57f, trail: 0xd4d400 },
];
const colourOf = (k) => PALETTE[k % PALETTE.length];
const css = (hex) => `#${hex.toString(16).padStart(6, "0")}`;

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
  const controls = new OrbitControls(camera, renderer.domElement);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x333344, 2));
  scene.add(gltf.scene);
  const bones = [];
  gltf.scene.traverse((o) => { if (o.isBone) bones.push(o); });
  // One skeleton per person, found by its root bone (a bone whose parent is not a bone): a GLB of
  // everyone holds one skeleton per person, each under its own node, all moved by one animation.
  const roots = bones.filter((b) => !(b.parent && b.parent.isBone));
  const names = (gltf.userData.vp3d || {}).people || [];
  const joints = new THREE.Group();
  roots.forEach((root, k) => {
    const colours = colourOf(k);
    // One person: the helper over the whole scene, as it always was; several: one per skeleton.
    const skeleton = new THREE.SkeletonHelper(roots.length === 1 ? gltf.scene : root);
    skeleton.setColors(new THREE.Color(colours.lines[0]), new THREE.Color(colours.lines[1]));
    skeleton.material.linewidth = 2;
    skeleton.frustumCulled = false;  // its bounds are those of the first pose: a person who walks away would vanish
    scene.add(skeleton);
    root.traverse((bone) => {
      if (!bone.isBone) return;
      const dot = new THREE.Mesh(new THREE.SphereGeometry(0.025, 10, 8), new THREE.MeshStandardMaterial({ color: colours.dot }));
      dot.userData.bone = bone;
      joints.add(dot);
    });
  });
  scene.add(joints);
  // The video's camera, when the GLB has one (a node "NAME camera" that the same animation moves and
  // turns): "camera view" looks through it, letterboxed to the video's shape, so the skeleton lies
  // where the video beside it shows the person. Only a camera in the scene is moved by the animation.
  let videoCamera = null;
  gltf.scene.traverse((o) => { if (o.isCamera && !videoCamera) videoCamera = o; });
  const videoAspect = videoCamera ? videoCamera.aspect : 1;  // the glTF camera's aspectRatio: the video's
  $("camera-view-label").hidden = !videoCamera;
  $("camera-view").checked = false;
  const viewing = () => videoCamera !== null && $("camera-view").checked;
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const clip = gltf.animations[0];
  mixer.clipAction(clip).play();
  const duration = clip ? clip.duration : 0;
  // The clip loops in the mixer, so its very end would show the first frame: stop just short of it.
  const pose = (t) => mixer.setTime(Math.min(t, Math.max(duration - 1e-4, 0)));
  // The root trails: each person's hips sampled over the clip, on the floor.
  const paths = roots.map(() => []);
  const position = new THREE.Vector3();
  for (let i = 0; i <= 200 && duration > 0; i++) {
    pose((duration * i) / 200);
    gltf.scene.updateMatrixWorld(true);
    roots.forEach((root, k) => {
      root.getWorldPosition(position);
      paths[k].push(new THREE.Vector3(position.x, 0.005, position.z));
    });
  }
  const trail = new THREE.Group();
  paths.forEach((points, k) => trail.add(new THREE.Line(new THREE.BufferGeometry().setFromPoints(points),
    new THREE.LineBasicMaterial({ color: colourOf(k).trail }))));
  scene.add(trail);
  // The floor reaches 6 m past wherever anyone's root goes (half-metre squares).
  const reach = Math.ceil(Math.max(5, ...paths.flat().map((p) => Math.max(Math.abs(p.x), Math.abs(p.z)) + 6)));
  scene.add(new THREE.GridHelper(2 * reach, 4 * reach, 0x55606e, 0x2c323c));
  // The camera follows the centre of everyone's roots (one person: the hips): the orbit's centre
  // eases towards it and the camera moves by as much, so the user's turn and zoom are kept while a
  // skater crosses the floor.
  const centre = (out) => {
    out.set(0, 0, 0);
    for (const root of roots) out.add(root.getWorldPosition(position));
    return out.divideScalar(roots.length);
  };
  const rootNow = new THREE.Vector3();
  const chase = (seconds) => {
    centre(rootNow);
    const step = rootNow.sub(controls.target).multiplyScalar(1 - Math.exp(-seconds / 0.25));
    controls.target.add(step);
    camera.position.add(step);
  };
  $("follow-who").textContent = roots.length > 1 ? "everyone" : "the person";
  const legend = $("people");
  legend.replaceChildren();
  legend.hidden = roots.length < 2;
  roots.forEach((root, k) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = css(colourOf(k).dot);
    const number = (names[k] || "").match(/\.p(\d+)$/);  // the pN of the person's own files
    item.append(swatch, `person ${number ? number[1] : k}`);
    item.title = names[k] || "";
    legend.append(item);
  });

  const video = $("video");
  let time = 0, playing = false, last = performance.now(), frame = 0;
  const scrub = $("scrub");
  scrub.max = String(duration);
  const setTime = (t) => {
    time = Math.min(Math.max(t, 0), duration);
    pose(time);
    gltf.scene.updateMatrixWorld(true);
    for (const dot of joints.children) dot.userData.bone.getWorldPosition(dot.position);
    scrub.value = String(time);
    $("clock").textContent = `${time.toFixed(2)} s`;
    if (Math.abs(video.currentTime - time) > 0.15 && video.readyState >= 1) video.currentTime = time;
    Object.assign(window.vp3d, { time, duration, playing });
  };
  // Where the picture goes on the canvas (CSS pixels, y from the top): all of it for the orbit
  // camera; the video's shape, centred, for the camera view (as the video element fits its frame).
  const viewport = { x: 0, y: 0, width: 1, height: 1 };
  const resize = () => {
    const w = host.clientWidth, h = host.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h; camera.updateProjectionMatrix();
    const width = viewing() ? Math.min(w, h * videoAspect) : w, height = viewing() ? Math.min(h, w / videoAspect) : h;
    Object.assign(viewport, { x: (w - width) / 2, y: (h - height) / 2, width, height });
  };
  const draw = () => {
    const active = viewing() ? videoCamera : camera;
    const h = host.clientHeight, { x, y, width, height } = viewport;
    renderer.setScissorTest(false);
    if (active !== camera) { renderer.setClearColor(0x000000); renderer.clear(); }  // bars, as the video's
    renderer.setViewport(x, h - y - height, width, height);
    renderer.setScissor(x, h - y - height, width, height);
    renderer.setScissorTest(active !== camera);
    renderer.render(scene, active);
    window.vp3d.cameraMatrix = active.matrixWorld.toArray();
  };
  $("camera-view").onchange = () => {
    controls.enabled = !viewing();  // the video's camera is where it was: nothing to drag
    window.vp3d.cameraView = viewing();
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
    const seconds = Math.max(now - last, 0) / 1000;
    if (playing) {
      setTime(time + seconds * Number($("speed").value));
      if (time >= duration) play(false);
    }
    last = now;
    resize();
    if ($("follow").checked) chase(seconds);
    controls.update();
    draw();
  };
  setTime(0);
  centre(controls.target);
  // Far enough back to see everyone at the start (one person: 3.1 m, as it always was).
  let spread = 0;
  for (const root of roots) spread = Math.max(spread, root.getWorldPosition(position).setY(controls.target.y).distanceTo(controls.target));
  const back = Math.max(1, (spread + 0.8) / 1.7);
  camera.position.copy(controls.target).add(new THREE.Vector3(1.6, 0.5, 2.6).multiplyScalar(back));
  controls.update();
  frame = requestAnimationFrame(loop);
  controls.enabled = true;
  // read by the tests: active() is the camera the view is drawn through, viewport where on the canvas
  window.vp3dViewer = { camera, controls, root: roots[0], roots, scene, videoCamera, viewport,
                        active: () => (viewing() ? videoCamera : camera) };
  state.view = { dispose: () => { cancelAnimationFrame(frame); renderer.dispose(); controls.dispose(); } };
  window.vp3d.ready = true;
  window.vp3d.bones = bones.length;
  window.vp3d.people = roots.length;
  window.vp3d.hasCamera = videoCamera !== null;
  window.vp3d.cameraView = false;
}

// ---- routing: / uploads, /jobs/ID is a job's own page (refresh, back/forward, shared links) ----
function route() {
  const match = location.pathname.match(/^\/jobs\/([A-Za-z0-9_-]+)$/);
  window.vp3d.ready = false;
  if (match) { follow(match[1]); return; }
  if (state.events) state.events.close();
  $("upload-error").textContent = state.pending ? $("upload-error").textContent : "";
  show(["upload"]);
}
window.addEventListener("popstate", route);
checkAccess();
route();
