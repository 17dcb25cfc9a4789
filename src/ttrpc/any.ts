// google.protobuf.Any the containerd way: containerd's typeurl names a type by its bare full name
// ("containerd.events.TaskExit", "containerd.runc.v1.Options"), not "type.googleapis.com/<name>".
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape, Registry } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError, errorMessage } from "../errdefs.ts";

/** The name an Any's type_url carries, with any "host/" prefix removed. */
export function anyTypeName(any: Any): string {
  const slash = any.typeUrl.lastIndexOf("/");
  return slash >= 0 ? any.typeUrl.slice(slash + 1) : any.typeUrl;
}

/** Packs a message with containerd's bare type URL. */
export function packAny<D extends DescMessage>(schema: D, msg: MessageInitShape<D>): Any {
  return create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, create(schema, msg)) });
}

export function anyIs(any: Any | undefined, schema: DescMessage): boolean {
  return any !== undefined && any.typeUrl !== "" && anyTypeName(any) === schema.typeName;
}

/** Unpacks an Any of the given type; InvalidArgumentError if it holds another type or bad bytes. */
export function unpackAny<D extends DescMessage>(any: Any, schema: D): MessageShape<D> {
  if (!anyIs(any, schema)) {
    throw new InvalidArgumentError(`expected ${schema.typeName} in Any, got ${JSON.stringify(any.typeUrl)}`);
  }
  try {
    return fromBinary(schema, any.value);
  } catch (err) {
    throw new InvalidArgumentError(`undecodable ${schema.typeName} in Any: ${errorMessage(err)}`);
  }
}

/** Unpacks an Any whose type is looked up in a registry (e.g. every containerd event type). */
export function unpackAnyWith(any: Any, registry: Registry): MessageShape<DescMessage> {
  const name = anyTypeName(any);
  const schema = registry.getMessage(name);
  if (!schema) throw new InvalidArgumentError(`unknown type ${JSON.stringify(any.typeUrl)} in Any`);
  return unpackAny(any, schema);
}
