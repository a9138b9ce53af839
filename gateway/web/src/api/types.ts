// Shapes of the API's answers (docs/api.md); money fields are decimal strings.

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
  unread?: number;
}

export interface Ticker {
  exchange: string;
  symbol: string;
  price: number;
  bid: number | null;
  ask: number | null;
  volume: number | null;
  change: number | null;
  timestamp: string | number;
}

export interface Exchange {
  id: string;
  default: boolean;
  status: "up" | "down";
  timeframes: string[];
  // set when the exchange's clock runs faster than the wall (the sim at SIM_SPEED > 1)
  clock?: { speed: number; anchor: string } | null;
}

/** A wall-clock instant (ms) on the exchange's own clock, where its candles are stamped. */
export function exchangeTime(exchange: Exchange | undefined, wallMs: number): number {
  const clock = exchange?.clock;
  if (!clock) return wallMs;
  const anchor = Date.parse(clock.anchor);
  return anchor + (wallMs - anchor) * clock.speed;
}

export interface Pair {
  symbol: string;
  base: string;
  quote: string;
  exchange: string;
  active: boolean;
}

export interface OrderBook {
  exchange: string;
  symbol: string;
  bids: [number, number][];
  asks: [number, number][];
  timestamp: string;
}

export interface JsonSchema {
  type?: string;
  title?: string;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

export interface CatalogEntry {
  name: string;
  description: string;
  parameters: JsonSchema;
  warmup: number | null;
  builtin: boolean;
}

export interface SavedStrategy {
  id: string;
  name: string;
  strategy: string;
  parameters: Record<string, unknown>;
  active: boolean;
  created_at: string;
}

export interface BacktestMetrics {
  final_equity: number;
  total_return: number;
  cagr: number | null;
  max_drawdown: number;
  sharpe: number | null;
  sortino: number | null;
  win_rate: number | null;
  profit_factor: number | null;
  n_trades: number;
  exposure: number;
}

export interface BacktestTrade {
  entry_at: string | number;
  exit_at: string | number;
  entry_price: number;
  exit_price: number;
  quantity: number;
  pnl: number;
  fee: number;
  exit_reason: string;
}

export interface Backtest {
  id: string;
  status: "queued" | "running" | "done" | "failed";
  progress: number;
  error: string | null;
  strategy: string;
  parameters: Record<string, unknown>;
  exchange?: string | null;
  symbol: string | null;
  timeframe: string | null;
  start?: string | null;
  end?: string | null;
  settings?: Record<string, unknown>;
  result?: { metrics: BacktestMetrics; trades: BacktestTrade[]; equity_curve: [number, number][] } | null;
  metrics?: BacktestMetrics | null;
  created_at: string;
  finished_at: string | null;
}

export interface Position {
  id: string;
  bot_id: string | null;
  exchange: string;
  symbol: string;
  mode: string;
  status: string;
  quantity: string;
  average_entry_price: string;
  cost_basis: string;
  realized_pnl: string;
  fees: string;
  opened_at: string;
  closed_at: string | null;
  mark_price: string | null;
  unrealized_pnl: string | null;
}

export interface Bot {
  id: string;
  strategy_id: string;
  strategy: string | Record<string, unknown> | null;
  name: string | null;
  exchange: string;
  symbol: string;
  timeframe: string;
  mode: "paper" | "live";
  status: "stopped" | "running" | "paused" | "error";
  capital: string;
  position_size: string;
  risk: Record<string, string | number | null>;
  last_signal: Record<string, unknown> | null;
  last_candle_at: string | null;
  error: string | null;
  paused_until: string | null;
  position: Partial<Position> | null;
  balances: Record<string, unknown> | { asset: string; free: string; locked: string; total: string }[] | null;
  equity: string | null;
  realized_pnl: string | null;
  pnl: string | null;
  created_at: string;
}

export interface Order {
  id: string;
  client_order_id: string;
  bot_id: string | null;
  exchange: string;
  symbol: string;
  side: "buy" | "sell";
  type: "market" | "limit";
  mode: string;
  quantity: string;
  price: string | null;
  status: string;
  filled_quantity: string;
  average_price: string | null;
  fee: string;
  reason: string | null;
  created_at: string;
}

export interface Trade {
  id: string;
  order_id: string;
  bot_id: string | null;
  exchange: string;
  symbol: string;
  side: "BUY" | "SELL";
  price: string;
  quantity: string;
  fee: string;
  pnl: string | null;
  mode: string;
  strategy_name: string | null;
  timestamp: string;
}

export interface Asset {
  asset: string;
  free: string;
  locked: string;
  total: string;
}

export interface Balances {
  wallet: Asset[];
  bots: { bot_id: string; name: string | null; status: string; assets: Asset[] }[];
}

export interface Webhook {
  id: string;
  url: string;
  kinds: string[];
  active: boolean;
  created_at: string;
  secret?: string;
}

export interface ExchangeKey {
  id: string;
  exchange: string;
  label: string;
  api_key_last4: string;
  api_key_masked: string;
  has_passphrase: boolean;
  created_at: string;
}

export interface Me {
  id: string;
  email: string;
  permissions: string[];
  preferences: { theme?: "light" | "dark" | "system"; notifications?: Record<string, string[]> };
  trading_limits: Record<string, string | number | null>;
}
