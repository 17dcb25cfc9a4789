// The image store under --root with the global flags' options, for the image commands (pull,
// images, tag, rmi, load, save, prune) and the full path of `run IMAGE`. Its own file so that
// `image-run.ts` loads the store only when the run cache cannot answer.
import { ImageStore } from "../images/store.ts";
import { type GlobalOptions, imageStoreOptions } from "./args.ts";

export function openImageStore(g: GlobalOptions): ImageStore {
  return new ImageStore(g.root, imageStoreOptions(g));
}
