// The container record and its teardown (src/containers/record.ts): the file it writes, steps in
// order and each recorded once done, a teardown cut short resumed where it stopped, a failure before
// any release leaving the record as it was, and one teardown per container at a time.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerStore, type Step } from "../../src/containers/record.ts";

const root = mkdtempSync(join(tmpdir(), "bunker-records-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("create writes <root>/containers/<ns>/<id>/record.json: the steps, not removing, nothing released", () => {
  const store = new ContainerStore(root);
  store.create("ns", "c1");
  const file = join(root, "containers", "ns", "c1", "record.json");
  const rec = JSON.parse(readFileSync(file, "utf8")) as { created: unknown };
  expect({ ...rec, created: typeof rec.created } as unknown).toEqual({ namespace: "ns", id: "c1", created: "string", steps: ["task", "bundle"], removing: false, released: [] });
  expect(store.list("ns").map((r) => r.id)).toEqual(["c1"]);
});

test("teardown releases task then bundle, records each, and removes the record (and the empty namespace dir)", async () => {
  const store = new ContainerStore(root);
  store.create("ns2", "c2");
  const seen: string[] = [];
  await store.teardown("ns2", "c2", async (step) => {
    seen.push(`${step}:${JSON.stringify(store.read("ns2", "c2"))}`);
  });
  expect(seen.map((s) => s.split(":")[0])).toEqual(["task", "bundle"]);
  expect(JSON.parse(seen[0]!.slice("task:".length))).toMatchObject({ removing: true, released: [] });
  expect(JSON.parse(seen[1]!.slice("bundle:".length))).toMatchObject({ removing: true, released: ["task"] });
  expect(existsSync(join(root, "containers", "ns2"))).toBe(false);
});

test("a teardown cut short after the task step resumes with the bundle only", async () => {
  const store = new ContainerStore(root);
  store.create("ns", "c3");
  const crash = new Error("crash");
  await expect(
    store.teardown("ns", "c3", async (step) => {
      if (step === "bundle") throw crash;
    }),
  ).rejects.toBe(crash);
  expect(store.read("ns", "c3")).toMatchObject({ removing: true, released: ["task"] });
  const resumed: Step[] = [];
  await new ContainerStore(root).teardown("ns", "c3", async (step) => void resumed.push(step));
  expect(resumed).toEqual(["bundle"]);
  expect(store.read("ns", "c3")).toBeUndefined();
});

test("a failure before anything was released clears the mark: the caller's error stands, nothing is pending", async () => {
  const store = new ContainerStore(root);
  store.create("ns", "c4");
  await expect(
    store.teardown("ns", "c4", async () => {
      throw new Error("task is running");
    }),
  ).rejects.toThrow("task is running");
  expect(store.read("ns", "c4")).toMatchObject({ removing: false, released: [] });
});

test("no record (a container from before records): the steps still run, in order", async () => {
  const seen: Step[] = [];
  await new ContainerStore(root).teardown("ns", "old", async (step) => void seen.push(step));
  expect(seen).toEqual(["task", "bundle"]);
});

test("two teardowns of one container at once run its steps once", async () => {
  const store = new ContainerStore(root);
  store.create("ns", "c5");
  let calls = 0;
  const release = async () => {
    calls++;
    await Bun.sleep(5);
  };
  await Promise.all([store.teardown("ns", "c5", release), store.teardown("ns", "c5", release)]);
  expect(calls).toBe(2);
});

test("a torn or foreign record file is not a record", () => {
  const store = new ContainerStore(root);
  store.create("ns", "c6");
  writeFileSync(join(root, "containers", "ns", "c6", "record.json"), "{ torn");
  expect(store.read("ns", "c6")).toBeUndefined();
});

test("persist: false runs the steps and removes the record without writing progress (the foreground run's own end)", async () => {
  const store = new ContainerStore(root);
  store.create("ns", "c7");
  const seen: string[] = [];
  await store.teardown("ns", "c7", async (step) => void seen.push(`${step}:${store.read("ns", "c7")?.removing}`), { persist: false });
  expect(seen).toEqual(["task:false", "bundle:false"]);
  expect(store.read("ns", "c7")).toBeUndefined();
});
