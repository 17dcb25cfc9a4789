// Pod networking under containerd's CRI plugin for bunker and for io.containerd.runc.v2 (issue #19):
// Debian's CNI plugins (bridge + host-local + loopback) from /usr/lib/cni with a config dir, a
// subnet and a lease dir of the test's own. containerd runs inside a network namespace the test
// makes (a NetnsAgent's, entered with nsenter), so the bridge, the veths and the routes live and die
// there and the machine's own network is never touched. Checks what kubelet relies on: NetworkReady,
// the pod IP in PodSandboxStatus, a pod's hostname, a container reaching another pod's IP, and the
// IP given back when the pod is removed (CNI DEL).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { type CriEnv, type Handler, startCriEnv } from "../support/cri/containerd-cri.ts";
import { runPod, startContainer } from "../support/cri/pods.ts";
import { removePod, waitForLog } from "../support/cri/inspect.ts";
import { NetnsAgent } from "../support/netns-agent.ts";

const HANDLERS: Handler[] = ["bunker", "runc"];
const T = 120_000;

describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr", "bin:nsenter", "bin:unshare"], "CRI pod network", (build) => {
  for (const [index, handler] of HANDLERS.entries()) {
    describe(`${handler} as the default handler`, () => {
      let agent: NetnsAgent | undefined;
      let env: CriEnv;
      // 10.88.<pid-derived>.0/24: private to this test's namespace anyway; distinct per handler for readable logs
      const subnet = `10.88.${((process.pid % 120) * 2 + index) % 250 + 1}`;
      beforeAll(async () => {
        agent = await NetnsAgent.start();
        env = await startCriEnv({ build, defaultHandler: handler, bridgeSubnet: subnet, netnsPid: agent.pid });
      }, T);
      afterAll(async () => {
        await env?.stop();
        await agent?.stop();
      }, T);

      test("NetworkReady with a CNI config; pods get IPs on the bridge and reach each other", async () => {
        const status = await env.client.runtime.status({});
        expect(status.status?.conditions.find((c) => c.type === "NetworkReady")?.status).toBe(true);
        const server = await runPod(env, "server", { podNetwork: true });
        const client = await runPod(env, "client", { podNetwork: true });
        const ips = await Promise.all([server, client].map(async (p) => (await env.client.runtime.podSandboxStatus({ podSandboxId: p.id })).status?.network?.ip ?? ""));
        for (const ip of ips) expect(ip.startsWith(`${subnet}.`)).toBe(true);
        expect(ips[0]).not.toBe(ips[1]);
        const httpd = await startContainer(env, server, "httpd", "mkdir -p /www && echo served by $(hostname) > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www");
        await waitForLog(server, "httpd", "serving");
        const curl = await startContainer(env, client, "curl", "sleep 300");
        // busybox-static's wget dies in glibc's static NSS here: a bare HTTP request through nc instead
        let fetched = "";
        for (let attempt = 0; attempt < 20 && !fetched.includes("served by"); attempt++) {
          const r = await env.client.runtime.execSync({ containerId: curl, cmd: ["sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ips[0]} 8080`], timeout: 10n });
          fetched = new TextDecoder().decode(r.stdout);
          if (!fetched) await Bun.sleep(200);
        }
        expect(fetched).toMatch(/^HTTP\/1\.[01] 200 OK\r\n/);
        expect(fetched).toEndWith(`\r\n\r\nserved by ${server.name}\n`);
        const own = await env.client.runtime.execSync({ containerId: httpd, cmd: ["ip", "-4", "-o", "addr", "show", "eth0"], timeout: 10n });
        expect(new TextDecoder().decode(own.stdout)).toContain(`inet ${ips[0]}/24`);
        for (const pod of [server, client]) await removePod(env, pod.id);
        // host-local keeps one file per leased IP: removal ran CNI DEL and gave both back
        const leases = readdirSync(join(env.ctd.dir, "cni/ipam/bunker-cri-test")).filter((f) => f.startsWith(`${subnet}.`));
        expect(leases).toEqual([]);
      }, T);
    });
  }
});
