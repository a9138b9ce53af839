// The chart code (lightweight-charts, most of the shipped JavaScript) in a chunk of its
// own, fetched when a chart is first shown: the login page, the tables and the forms
// paint without waiting for it.
import { useEffect, useState } from "preact/hooks";

type ChartModule = typeof import("./Chart");
let loaded: ChartModule | null = null;
let loading: Promise<ChartModule> | null = null;

export function loadCharts(): Promise<ChartModule> {
  loading ??= import("./Chart").then((module) => (loaded = module));
  return loading;
}

/** The chart module, or null until its chunk has arrived. */
export function useCharts(): ChartModule | null {
  const [module, setModule] = useState(loaded);
  useEffect(() => {
    if (!module) void loadCharts().then(setModule);
  }, []);
  return module;
}
