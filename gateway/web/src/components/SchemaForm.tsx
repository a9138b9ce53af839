// A strategy's parameters as form fields, generated from the catalog's JSON schema: each
// with its bounds, default and description; an optional number may be left empty (null).
// A refusal of the parameters (422) is shown under the field it names, e.g. the
// expression of a rule strategy with the caret under the unexpected word.
import { ApiError } from "../api/http";
import type { JsonSchema } from "../api/types";
import { Field } from "./ui";

function plain(schema: JsonSchema): { type: string; schema: JsonSchema; nullable: boolean } {
  if (schema.anyOf) {
    const real = schema.anyOf.find((s) => s.type !== "null") ?? {};
    return { type: real.type ?? "string", schema: { ...real, ...schema, anyOf: undefined }, nullable: schema.anyOf.some((s) => s.type === "null") };
  }
  return { type: schema.type ?? "string", schema, nullable: false };
}

export function defaults(schema: JsonSchema | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, prop] of Object.entries(schema?.properties ?? {})) {
    if (prop.default !== undefined) out[name] = prop.default;
  }
  return out;
}

function bounds(s: JsonSchema): string {
  const parts: string[] = [];
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  return parts.join(", ");
}

/** The field a parameters refusal names ("... for rules: entry: Value error, ..."), and its message. */
export function parameterErrors(error: unknown): Record<string, string> {
  if (!(error instanceof ApiError)) return {};
  const out: Record<string, string> = {};
  for (const e of error.errors) {
    if (!e.loc.includes("parameters")) continue;
    const after = e.loc[e.loc.indexOf("parameters") + 1];
    if (typeof after === "string") {
      out[after] = e.msg;
      continue;
    }
    const match = /(?:parameters for [\w.-]+: )?(\w+): (?:Value error, )?([\s\S]*)$/.exec(e.msg);
    if (match) out[match[1]] = match[2];
    else out._ = e.msg;
  }
  return out;
}

interface Props {
  schema: JsonSchema;
  values: Record<string, unknown>;
  onChange: (values: Record<string, unknown>) => void;
  errors: Record<string, string>;
  idPrefix: string;
}

export function SchemaForm({ schema, values, onChange, errors }: Props) {
  const required = new Set(schema.required ?? []);
  const set = (name: string, value: unknown) => onChange({ ...values, [name]: value });
  return (
    <fieldset class="params">
      <legend>Parameters</legend>
      {errors._ ? <p class="problem pre" role="alert">{errors._}</p> : null}
      {Object.entries(schema.properties ?? {}).map(([name, raw]) => {
        const { type, schema: s, nullable } = plain(raw);
        const label = s.title ?? name;
        const limit = bounds(s);
        const hint = [s.description, limit && `(${limit})`, nullable && "optional"].filter(Boolean).join(" ");
        const value = values[name];
        let control;
        if (s.enum) {
          control = (
            <select name={name} value={String(value ?? "")} onChange={(e) => set(name, e.currentTarget.value)}>
              {s.enum.map((option) => (
                <option key={String(option)} value={String(option)}>
                  {String(option)}
                </option>
              ))}
            </select>
          );
        } else if (type === "integer" || type === "number") {
          const min = s.minimum ?? s.exclusiveMinimum;
          const max = s.maximum ?? s.exclusiveMaximum;
          control = (
            <input
              type="number"
              name={name}
              inputMode="decimal"
              step={type === "integer" ? 1 : "any"}
              min={min}
              max={max}
              required={required.has(name) || (!nullable && raw.default === undefined)}
              value={value === null || value === undefined ? "" : String(value)}
              onInput={(e) => {
                const text = e.currentTarget.value;
                set(name, text === "" ? (nullable ? null : undefined) : Number(text));
              }}
            />
          );
        } else if (type === "boolean") {
          control = <input type="checkbox" name={name} checked={Boolean(value)} onChange={(e) => set(name, e.currentTarget.checked)} />;
        } else {
          const long = (s.maxLength ?? 0) > 200;
          control = long ? (
            <textarea
              name={name}
              class="code"
              rows={2}
              spellcheck={false}
              required={required.has(name)}
              maxLength={s.maxLength}
              value={String(value ?? "")}
              onInput={(e) => set(name, e.currentTarget.value === "" && nullable ? null : e.currentTarget.value)}
            />
          ) : (
            <input
              type="text"
              name={name}
              required={required.has(name)}
              maxLength={s.maxLength}
              value={String(value ?? "")}
              onInput={(e) => set(name, e.currentTarget.value === "" && nullable ? null : e.currentTarget.value)}
            />
          );
        }
        return (
          <Field key={name} label={label} hint={hint} error={errors[name]} wide={type === "string" && !s.enum}>
            {control}
          </Field>
        );
      })}
    </fieldset>
  );
}

/** The values to send: fields left empty (undefined) dropped, so the defaults apply. */
export function cleaned(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && !(typeof v === "number" && Number.isNaN(v))));
}
