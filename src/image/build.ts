// Guest image builder (implementation in progress; signature is the contract).
export interface ImageManifest {
  name: string;
  id: string;
}

export async function buildImage(_opts: {
  dataDir: string;
  name: string;
  packages: string[];
  force?: boolean;
  onProgress?: (msg: string) => void;
}): Promise<ImageManifest> {
  await Promise.resolve();
  throw new Error('not implemented yet');
}
