// The wire contract (request bodies, ranges and defaults) is defined once, in the SDK package
// (packages/sdk/src/contract.ts, `forkd/contract`): the SDK is installed alone and must carry it.
// Re-exported here so every layer of the daemon reads it from below itself (docs/ARCHITECTURE.md).
export * from 'forkd/contract';
