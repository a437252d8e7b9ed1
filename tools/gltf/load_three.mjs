// Load a glTF asset with three.js's GLTFLoader in plain Node (no browser, no WebGL) and print, as
// JSON on stdout, what three.js makes of it: the scene's objects, the animation clips and, for
// each requested time, the world transform of every named object with the clip applied.
//   node tools/gltf/load_three.mjs FILE.glb|FILE.gltf [--times 0,0.5,1] [--clip NAME]
// --clip picks the clip to play (default: the first); times are seconds.
// Output conventions: three.js is right-handed, +Y up, metres as stored in the file; positions are
// [x, y, z]; quaternions are [x, y, z, w] (glTF order). Names are three.js's, i.e. sanitised by
// PropertyBinding.sanitizeNodeName (spaces become "_", the characters []./: are dropped) and made
// unique with "_1", "_2"... suffixes; objects without a name are listed but have no transforms.
// Exit status: 0 when loaded, 2 on a usage error or when GLTFLoader rejects the file.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AnimationMixer, LoopOnce, Quaternion, REVISION, Vector3 } from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

installNodePolyfills();

const usage = 'usage: node tools/gltf/load_three.mjs FILE.glb|FILE.gltf [--times 0,0.5,1] [--clip NAME]';

async function main() {
  const { values, positionals } = parseArgs({
    options: { times: { type: 'string' }, clip: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError(usage);
  const times = values.times === undefined ? [] : parseTimes(values.times);

  const assetPath = path.resolve(positionals[0]);
  const bytes = await readFile(assetPath);
  const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  // A file:// resource path makes GLTFLoader resolve external buffers exactly as a browser would
  // (relative to the asset, percent-decoded); the fetch polyfill below serves them from disk.
  const resourcePath = pathToFileURL(path.dirname(assetPath) + path.sep).href;
  const gltf = await new GLTFLoader().parseAsync(arrayBuffer, resourcePath);
  const scene = gltf.scene;
  scene.updateMatrixWorld(true);

  const objects = [];
  scene.traverse((object) => {
    objects.push({ name: object.name, type: object.type, parent: object.parent?.name ?? null });
  });
  const animations = gltf.animations.map((clip) => ({
    name: clip.name,
    duration: clip.duration,
    tracks: clip.tracks.map((track) => ({
      name: track.name,
      times_length: track.times.length,
      values_length: track.values.length,
      value_size: track.getValueSize(),
      interpolation: interpolationName(track),
    })),
  }));

  const result = {
    three_revision: REVISION,
    scene_name: scene.name,
    nodes: objects,
    animations,
    rest: worldTransforms(scene), // before any clip is applied
    clip: null,
    samples: [],
  };
  if (times.length > 0) {
    const clip = pickClip(gltf.animations, values.clip);
    result.clip = clip.name;
    const mixer = new AnimationMixer(scene);
    // LoopOnce + clamp: t == duration gives the last keyframe, where the default LoopRepeat
    // would wrap round to t = 0.
    const action = mixer.clipAction(clip).setLoop(LoopOnce, 1);
    action.clampWhenFinished = true;
    action.play();
    for (const time of times) {
      action.reset(); // clears the paused/finished state a previous time past the end leaves
      mixer.setTime(time);
      scene.updateMatrixWorld(true);
      result.samples.push({ time, ...worldTransforms(scene) });
    }
  }
  process.stdout.write(JSON.stringify(result, null, 1) + '\n');
}

function worldTransforms(scene) {
  const positions = {};
  const quaternions = {};
  const p = new Vector3();
  const q = new Quaternion();
  scene.traverse((object) => {
    if (!object.name) return;
    object.matrixWorld.decompose(p, q, new Vector3());
    positions[object.name] = p.toArray();
    quaternions[object.name] = q.toArray();
  });
  return { world_positions: positions, world_quaternions: quaternions };
}

function pickClip(clips, name) {
  if (clips.length === 0) throw new UsageError('--times given but the file has no animations');
  if (name === undefined) return clips[0];
  const clip = clips.find((c) => c.name === name);
  if (!clip) throw new UsageError(`no clip named ${JSON.stringify(name)}; clips: ${clips.map((c) => c.name).join(', ')}`);
  return clip;
}

function parseTimes(text) {
  const times = text.split(',').filter((s) => s.trim() !== '').map(Number);
  if (times.some((t) => !Number.isFinite(t))) throw new UsageError(`--times must be comma-separated seconds, got ${JSON.stringify(text)}`);
  return times;
}

function interpolationName(track) {
  // three.js has no name getter; these are the glTF names its InterpolateX constants stand for.
  return { 2300: 'STEP', 2301: 'LINEAR', 2302: 'CUBICSPLINE' }[track.getInterpolation()] ?? 'CUSTOM';
}

function installNodePolyfills() {
  // three's FileLoader fetches buffers and reports progress with ProgressEvent. Node's fetch has no
  // file: scheme and Node 20 has no ProgressEvent; data: URIs already work with Node's fetch.
  const nodeFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.protocol !== 'file:') return nodeFetch(input, init);
    return new Response(await readFile(fileURLToPath(url)), { status: 200 });
  };
  globalThis.ProgressEvent ??= class ProgressEvent extends Event {
    constructor(type, { lengthComputable = false, loaded = 0, total = 0 } = {}) {
      super(type);
      Object.assign(this, { lengthComputable, loaded, total });
    }
  };
}

class UsageError extends Error {}

main().catch((error) => {
  console.error(error instanceof UsageError ? error.message : `load_three.mjs: ${error?.stack ?? error}`);
  process.exitCode = 2;
});
