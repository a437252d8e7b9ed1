// Validate one glTF 2.0 asset (.gltf with external or embedded buffers, or .glb) with the Khronos
// glTF Validator and print its report as JSON on stdout.
//   node tools/gltf/validate.mjs FILE.glb|FILE.gltf
// Exit status: 0 when the report has no errors (warnings, infos and hints allowed), 1 when it has
// errors, 2 when the file could not be read or the validator refused it (message on stderr).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { validateBytes, version } from 'gltf-validator';

const usage = 'usage: node tools/gltf/validate.mjs FILE.glb|FILE.gltf';

async function main(argv) {
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    console.error(usage);
    return 2;
  }
  const assetPath = path.resolve(argv[0]);
  const assetDir = path.dirname(assetPath);
  const data = new Uint8Array(await readFile(assetPath));
  const report = await validateBytes(data, {
    uri: path.basename(assetPath),
    maxIssues: 0, // unlimited: a test wants every message, not the first 100
    writeTimestamp: false, // keeps reports byte-identical between runs
    // Buffers and images are resolved relative to the asset, as a viewer would; a missing file
    // becomes an IO_ERROR message in the report rather than a crash.
    externalResourceFunction: async (uri) =>
      new Uint8Array(await readFile(path.resolve(assetDir, decodeURIComponent(uri)))),
  });
  report.validatorVersion ??= version();
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  return report.issues.numErrors === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (status) => { process.exitCode = status; },
  (error) => {
    // The validator rejects with a plain string (e.g. an unrecognised file format).
    console.error(`validate.mjs: ${process.argv[2]}: ${error instanceof Error ? error.message : error}`);
    process.exitCode = 2;
  },
);
