// Numbers and times for people: prices with the precision they carry, money (decimal
// strings from the API) kept as text until shown, times in the reader's locale.

const priceFormats = new Map<number, Intl.NumberFormat>();

export function price(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = typeof value === "string" ? Number(value) : value;
  if (!Number.isFinite(n)) return "—";
  const abs = Math.abs(n);
  const digits = abs >= 1000 ? 2 : abs >= 1 ? 4 : abs >= 0.01 ? 6 : 8;
  let fmt = priceFormats.get(digits);
  if (!fmt) {
    fmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: Math.min(2, digits), maximumFractionDigits: digits });
    priceFormats.set(digits, fmt);
  }
  return fmt.format(n);
}

/** A money string from the API ("123.45000000") with its trailing zeros trimmed. */
export function money(value: string | number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  // Amounts under one keep their small digits (0.00049 BTC); larger ones show cents.
  return n.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: Math.abs(n) < 1 ? 8 : digits });
}

export function signed(value: string | number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  const text = n.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return n > 0 ? `+${text}` : text;
}

export function percent(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

export function ratio(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return value.toFixed(digits);
}

export function volume(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 }).format(value);
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function when(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : timeFormat.format(date);
}

/** Sign class for a PnL value: "up", "down" or "". */
export function tone(value: string | number | null | undefined): string {
  const n = Number(value);
  return !Number.isFinite(n) || n === 0 ? "" : n > 0 ? "up" : "down";
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
