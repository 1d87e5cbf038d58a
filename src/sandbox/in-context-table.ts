/**
 * `console.table`, evaluated inside each session's context (see in-context.ts): the rows and
 * columns of an array or plain object as leaf previews (protocol/types.ts `ConsoleTable`), the
 * box-drawn text Node prints, and the table's JSON for the host. It reads values through
 * in-context-safe.ts and previews cells through in-context-preview.ts, so no user code runs.
 */
import type { ConsoleTable, PreviewNode } from '../../protocol/types.js';
import type { PreviewBudget, PreviewLimits, Previewer } from './in-context-preview.js';
import type { Safe } from './in-context-safe.js';

export interface TableMaker {
  /** The table of `data`, its text and its JSON; null when `data` is not an array or plain object. */
  table(data: unknown, columns: unknown): { text: string; json: string } | null;
}

export function inContextTable(safe: Safe, previewer: Previewer, limits: PreviewLimits): TableMaker {
  'use strict';
  const { apply, ownKeys, isArray, push, join, kindOf, ownProperty, cut, StringCtor } = safe;
  const create = Object.create;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const mapHas = Map.prototype.has;
  const { max: mathMax, floor } = Math;

  function table(data: unknown, columnsArg: unknown): { text: string; json: string } | null {
    // Arrays and plain objects only: a Map, a Set or a Proxy is logged as it is.
    if (data === null || typeof data !== 'object' || kindOf(data) !== 'other') return null;
    const budget = previewer.budget();
    const keys = ownKeys(data);
    const wanted = wantedColumns(columnsArg);
    const columns: string[] = ['(index)'];
    const cells: Array<Map<string, PreviewNode>> = [];
    const indexes: string[] = [];
    let values = false;
    let more = 0;
    for (let index = 0; index < keys.length; index++) {
      const key = keys[index]!;
      const property = typeof key === 'string' && !(isArray(data) && key === 'length') ? ownProperty(data, key) : undefined;
      if (property === undefined || !property.enumerable) continue;
      if (indexes.length >= limits.maxWidth || budget.nodes <= 0) { more++; continue; }
      push(indexes, key as string);
      push(cells, rowCells(budget, property, wanted, columns, () => { values = true; }));
    }
    if (values) push(columns, 'Values');
    const rows: Array<Array<PreviewNode | null>> = [];
    for (let row = 0; row < indexes.length; row++) {
      const line: Array<PreviewNode | null> = [previewer.leaf(indexes[row]!)];
      for (let column = 1; column < columns.length; column++) line[column] = apply(mapGet, cells[row]!, [columns[column]]) as PreviewNode ?? null;
      push(rows, line);
    }
    const result = create(null) as ConsoleTable;
    result.columns = columns;
    result.rows = rows;
    if (more > 0) result.more = more;
    return { text: tableText(result), json: encode(result) };
  }

  function wantedColumns(columnsArg: unknown): string[] | null {
    if (!isArray(columnsArg) || kindOf(columnsArg) === 'proxy') return null;
    const wanted: string[] = [];
    for (let index = 0; index < columnsArg.length && index < limits.maxWidth; index++) {
      const item = ownProperty(columnsArg, StringCtor(index));
      if (item !== undefined && typeof item.value === 'string') push(wanted, cut(item.value, limits.leafChars)[0]);
    }
    return wanted;
  }

  /** One row's cells by column; adds the columns it is the first to have. */
  function rowCells(budget: PreviewBudget, property: { value?: unknown; accessor?: string }, wanted: string[] | null, columns: string[], sawValue: () => void): Map<string, PreviewNode> {
    const row = new Map<string, PreviewNode>();
    const value = property.value;
    const put = (column: string, cell: PreviewNode) => {
      apply(mapSet, row, [column, cell]);
      if (column !== 'Values' && !includes(columns, column)) push(columns, column);
    };
    if (property.accessor !== undefined || value === null || typeof value !== 'object' || kindOf(value) === 'proxy') {
      put('Values', previewer.cell(budget, value, property.accessor));
      sawValue();
      return row;
    }
    const keys = ownKeys(value);
    for (let index = 0; index < keys.length && budget.nodes > 0; index++) {
      const key = keys[index]!;
      if (typeof key !== 'string' || (isArray(value) && key === 'length')) continue;
      if (wanted !== null && !includes(wanted, key)) continue;
      if (!apply(mapHas, row, [key]) && columns.length > limits.maxWidth) continue;
      const cell = ownProperty(value, key);
      if (cell === undefined || !cell.enumerable) continue;
      put(cut(key, limits.leafChars)[0], previewer.cell(budget, cell.value, cell.accessor));
    }
    return row;
  }

  function includes(list: string[], item: string): boolean {
    for (let index = 0; index < list.length; index++) if (list[index] === item) return true;
    return false;
  }

  function repeat(text: string, count: number): string {
    let out = '';
    for (let index = 0; index < count; index++) out += text;
    return out;
  }

  /** Node's box-drawn table, each cell centred. */
  function tableText(result: ConsoleTable): string {
    const texts: string[][] = [result.columns];
    for (let row = 0; row < result.rows.length; row++) {
      const line: string[] = [];
      const cells = result.rows[row]!;
      for (let column = 0; column < result.columns.length; column++) {
        const cell = cells[column] ?? null;
        push(line, cell === null ? '' : previewer.renderCell(cell, column !== 0));
      }
      push(texts, line);
    }
    const widths: number[] = [];
    for (let column = 0; column < result.columns.length; column++) {
      let width = 0;
      for (let row = 0; row < texts.length; row++) width = mathMax(width, texts[row]![column]!.length + 2);
      push(widths, width);
    }
    const rule = (left: string, middle: string, right: string) => {
      const parts: string[] = [];
      for (let column = 0; column < widths.length; column++) push(parts, repeat('─', widths[column]!));
      return `${left}${join(parts, middle)}${right}`;
    };
    const line = (cells: string[]) => {
      const parts: string[] = [];
      for (let column = 0; column < widths.length; column++) {
        const cell = cells[column]!;
        const space = widths[column]! - cell.length;
        const left = floor(space / 2);
        push(parts, `${repeat(' ', left)}${cell}${repeat(' ', space - left)}`);
      }
      return `│${join(parts, '│')}│`;
    };
    const out: string[] = [rule('┌', '┬', '┐'), line(texts[0]!), rule('├', '┼', '┤')];
    for (let row = 1; row < texts.length; row++) push(out, line(texts[row]!));
    push(out, rule('└', '┴', '┘'));
    if (result.more !== undefined) push(out, `... ${result.more} more rows`);
    return join(out, '\n');
  }

  function encode(result: ConsoleTable): string {
    const columns: string[] = [];
    for (let index = 0; index < result.columns.length; index++) push(columns, previewer.json(result.columns[index]!));
    const rows: string[] = [];
    for (let index = 0; index < result.rows.length; index++) push(rows, previewer.encode(result.rows[index]!));
    return `{"columns":[${join(columns, ',')}],"rows":[${join(rows, ',')}]${result.more === undefined ? '' : `,"more":${result.more}`}}`;
  }

  const maker: TableMaker = { table };
  safe.setProto(maker, null);
  return maker;
}
