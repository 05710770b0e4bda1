import path from 'node:path';
import { isUtf8 } from 'node:buffer';
import type { FilterDocument } from '@yuan/core';

/** Where the text and the id of a record are: dotted field paths such as `text` or `meta.content`. */
export interface RecordFields {
  textField: string;
  idField: string;
}

/** A line that is not a usable document: the reason (`invalid-json`, `missing-text-field`, ...) and a detail. */
export interface Malformed {
  reason: string;
  detail: string;
}

/** Reads a dotted path from a record. */
export function getField(record: Record<string, unknown>, dotted: string): unknown {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  if (!dotted.includes('.')) return record[dotted];
  let value: unknown = record;
  for (const key of dotted.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** A copy of `record` with the dotted path set to `value` (objects along the path are copied, not mutated). */
export function withField(record: Record<string, unknown>, dotted: string, value: unknown): Record<string, unknown> {
  const [key, ...rest] = dotted.split('.');
  if (rest.length === 0) return { ...record, [key]: value };
  const inner = record[key];
  return {
    ...record,
    [key]: withField(
      typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : {},
      rest.join('.'),
      value,
    ),
  };
}

/** Parses one input line into a document, `'blank'` for an empty line, or the reason it is malformed. */
export function parseRecord(
  bytes: Buffer,
  file: string,
  lineNo: number,
  fields: RecordFields,
): FilterDocument | Malformed | 'blank' {
  if (!isUtf8(bytes)) return { reason: 'invalid-utf8', detail: 'the line is not valid UTF-8' };
  let line = bytes.toString('utf8');
  if (line.endsWith('\r')) line = line.slice(0, -1);
  if (line.trim() === '') return 'blank';
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch (e) {
    return { reason: 'invalid-json', detail: (e as Error).message.slice(0, 200) };
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    return {
      reason: 'not-an-object',
      detail: `the line is JSON ${Array.isArray(record) ? 'array' : record === null ? 'null' : typeof record}, not an object`,
    };
  }
  const rec = record as Record<string, unknown>;
  const text = getField(rec, fields.textField);
  if (text === undefined) return { reason: 'missing-text-field', detail: `no field "${fields.textField}"` };
  if (typeof text !== 'string')
    return {
      reason: 'text-not-string',
      detail: `field "${fields.textField}" is ${text === null ? 'null' : typeof text}`,
    };
  const rawId = getField(rec, fields.idField);
  const id =
    typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : `${path.basename(file)}:${lineNo}`;
  return { id, text, record: rec };
}
