// The project's own scripts run on the Node pinned in devDependencies (the npm
// registry's `node` package). npm puts node_modules/.bin first on PATH, so this
// process is that Node unless its install script was skipped: fail loudly then.
const major = Number(process.versions.node.split('.')[0]);
if (major !== 24) {
  console.error(
    `protoloop: scripts must run on the pinned Node 24, but this is Node ${process.versions.node} (${process.execPath}).\n` +
      `The devDependency "node" did not install its binary: check that package.json's "allowScripts" approves "node" ` +
      `(npm install-scripts approve node) and run npm install again.`,
  );
  process.exit(1);
}
