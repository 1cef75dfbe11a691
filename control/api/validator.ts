/**
 * Request validation with the TypeBox compiler (what
 * @fastify/type-provider-typebox's compiler does: bodies checked as sent,
 * query strings and params converted to the schema's types first), with one
 * change: when a union fails (a splice body is one of two forms), the errors
 * reported are those of the form the value came closest to, so a caller reads
 * "body/client/fd Expected integer" instead of "Expected union value".
 */
import { type Static, type TSchema, TypeGuard } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';

export interface SchemaError {
  path: string;
  message: string;
}

export interface Checker<T> {
  check(value: unknown): value is T;
  /** The errors of a value `check` refused (at most `max`). */
  errors(value: unknown, max?: number): SchemaError[];
}

function collect(c: TypeCheck<TSchema>, value: unknown, max: number): SchemaError[] {
  const out: SchemaError[] = [];
  for (const e of c.Errors(value)) {
    out.push({ path: e.path, message: e.message });
    if (out.length >= max) break;
  }
  return out;
}

export function compileChecker<S extends TSchema>(schema: S): Checker<Static<S>> {
  const whole = TypeCompiler.Compile(schema);
  const branches = TypeGuard.IsUnion(schema) ? schema.anyOf.map((s) => TypeCompiler.Compile(s)) : [];
  return {
    check: (value): value is Static<S> => whole.Check(value),
    errors(value, max = 10) {
      if (branches.length === 0) return collect(whole, value, max);
      let best: SchemaError[] | undefined;
      for (const b of branches) {
        const errs = collect(b, value, 50);
        if (!best || errs.length < best.length) best = errs;
      }
      return (best ?? []).slice(0, max);
    },
  };
}

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const c = compileChecker(schema);
  return (value: unknown) => {
    const v = httpPart === 'body' ? value : Value.Convert(schema, value);
    if (c.check(v)) return { value: v };
    return { error: c.errors(v).map((e) => ({ instancePath: e.path, message: e.message })) as never };
  };
};
