// Container lifecycle events of containerd's CRI server (GetContainerEvents): each event carries the
// sandbox's status and the statuses of all its containers, and goes into a bounded queue that drops
// the event rather than block the container operation that raised it.
import type { Logger } from "pino";
import { isNotFound } from "../errdefs.ts";
import { criLogger } from "./helpers.ts";
import type { ContainerEventResponse, ContainerEventType, ContainerStatus, PodSandboxStatus } from "./types.ts";

/** The CRI server calls the event builder needs (PodSandboxStatus, ListContainers, ContainerStatus). */
export interface ContainerEventSource {
  podSandboxStatus(podSandboxId: string): Promise<PodSandboxStatus>;
  listContainers(filter: { podSandboxId: string }): Promise<readonly { id: string }[]>;
  containerStatus(containerId: string): Promise<ContainerStatus>;
}

/** containerd's containerEventsChan capacity. */
export const CONTAINER_EVENTS_CAPACITY = 1000;

/** A bounded FIFO of events: send never waits (a full queue drops), receivers wait for the next event. */
export class ContainerEventQueue {
  readonly #items: ContainerEventResponse[] = [];
  readonly #waiters: ((ev: ContainerEventResponse) => void)[] = [];

  constructor(readonly capacity = CONTAINER_EVENTS_CAPACITY) {}

  get size(): number {
    return this.#items.length;
  }

  /** false when the queue is full and the event was dropped. */
  send(event: ContainerEventResponse): boolean {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter(event);
      return true;
    }
    if (this.#items.length >= this.capacity) return false;
    this.#items.push(event);
    return true;
  }

  receive(): Promise<ContainerEventResponse> {
    const next = this.#items.shift();
    if (next !== undefined) return Promise.resolve(next);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

const nowNanos = (): bigint => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n;

/** getContainerStatuses: the status of every container of the sandbox; ones removed meanwhile are skipped. */
export async function getContainerStatuses(source: ContainerEventSource, podSandboxId: string): Promise<ContainerStatus[]> {
  const containers = await source.listContainers({ podSandboxId });
  const statuses: ContainerStatus[] = [];
  for (const c of containers) {
    try {
      statuses.push(await source.containerStatus(c.id));
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
  }
  return statuses;
}

/**
 * generateAndSendContainerEvent: builds the event and queues it. A failing sandbox status sends the
 * event without it (warning); failing container statuses send it with none (error); a full queue
 * drops it (debug). It never throws: the operation that raised the event has already happened.
 */
export async function generateAndSendContainerEvent(
  source: ContainerEventSource,
  queue: ContainerEventQueue,
  containerId: string,
  sandboxId: string,
  eventType: ContainerEventType,
  log: Logger = criLogger(),
  now: () => bigint = nowNanos,
): Promise<ContainerEventResponse> {
  let podSandboxStatus: PodSandboxStatus | null = null;
  try {
    podSandboxStatus = await source.podSandboxStatus(sandboxId);
  } catch (err) {
    log.warn({ err, sandboxId }, `Failed to get podSandbox status for container event for sandboxID "${sandboxId}". Sending the event with nil podSandboxStatus.`);
  }
  let containersStatuses: ContainerStatus[] = [];
  try {
    containersStatuses = await getContainerStatuses(source, sandboxId);
  } catch (err) {
    log.error({ err, sandboxId }, `Failed to get container statuses for container event for sandboxID "${sandboxId}"`);
  }
  const event: ContainerEventResponse = {
    containerId,
    containerEventType: eventType,
    createdAt: now(),
    podSandboxStatus,
    containersStatuses,
  };
  if (!queue.send(event)) log.debug({ containerId, eventType }, "containerEventsChan is full, discarding event");
  return event;
}
