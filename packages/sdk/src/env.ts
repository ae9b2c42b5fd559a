// The SDK is a library used outside forkd: like E2B's, it falls back to FORKD_URL and
// FORKD_TOKEN when the caller passes no url/token. This is the only SDK file reading
// process.env (eslint.config.js lists it beside src/lib/config.ts).
export interface SdkEnv {
  url: string | undefined;
  token: string | undefined;
}

export function sdkEnv(): SdkEnv {
  const get = (name: string): string | undefined => {
    const v = process.env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  return { url: get('FORKD_URL'), token: get('FORKD_TOKEN') };
}
