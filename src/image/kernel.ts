// Guest kernel: fetched from Debian's linux-image-cloud-amd64 package, bzImage -> ELF vmlinux.
// (Implementation in progress; signature is the contract other modules use.)
export interface KernelInfo {
  /** Absolute path of the bootable ELF vmlinux (PVH entry). */
  vmlinuxPath: string;
  /** Kernel release, e.g. "6.1.0-28-cloud-amd64". */
  release: string;
  /** Directory holding lib/modules/<release>/ from the package. */
  modulesRoot: string;
}

export async function ensureKernel(_opts: {
  dataDir: string;
  onProgress?: (msg: string) => void;
  signal?: AbortSignal;
}): Promise<KernelInfo> {
  await Promise.resolve();
  throw new Error('not implemented yet');
}

/** The kernel if it is already present, without fetching anything. */
export async function findKernel(_dataDir: string): Promise<KernelInfo | undefined> {
  await Promise.resolve();
  return undefined;
}
