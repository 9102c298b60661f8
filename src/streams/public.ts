// The public names of src/streams; src/index.ts re-exports this list.
export { StreamReader, DEFAULT_LIMIT } from './stream-reader.ts';
export type { StreamReaderOptions } from './stream-reader.ts';
export { StreamWriter } from './stream-writer.ts';
export type { StreamStartTlsOptions } from './stream-writer.ts';
export type { ClientConnectedCallback } from './stream-protocol.ts';
export { openConnection, startServer, openUnixConnection, startUnixServer } from './streams.ts';
export type { StreamPair, StreamLimitOption, OpenConnectionOptions, StartServerOptions, OpenUnixConnectionOptions, StartUnixServerOptions } from './streams.ts';
