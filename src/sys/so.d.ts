// `import path from "x.so" with { type: "file" }` gives the file's path (a $bunfs path inside a
// compiled binary, which Bun's dlopen extracts to a temp file).
declare module "*.so" {
  const path: string;
  export default path;
}
