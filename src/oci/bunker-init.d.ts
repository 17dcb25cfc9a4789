// `import path from "../../native/bunker-init" with { type: "file" }` gives the file's path (a
// $bunfs path inside a compiled binary): see src/oci/init-binary.ts.
declare module "*/bunker-init" {
  const path: string;
  export default path;
}
