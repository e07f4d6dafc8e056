import { parseEvent } from "./events";
import { HandlerSettings } from "./settings";

export type Log = (line: string) => void;

/**
 * Builds the function Lambda calls for each EventBridge event. For now it parses each event and
 * logs one structured line; the replacement logic (drain, launch, register) lands with the
 * handler issue.
 */
export function createHandler(settings: HandlerSettings, log: Log = (line) => console.log(line)) {
    return async (event: unknown): Promise<void> => {
        const started = Date.now();
        const parsed = parseEvent(event);
        log(
            JSON.stringify({
                stack: settings.stack,
                event: parsed.kind,
                ...(parsed.kind === "ignored" ? { reason: parsed.reason } : { eventId: parsed.id }),
                ...("instanceId" in parsed ? { instance: parsed.instanceId } : {}),
                ...("state" in parsed ? { state: parsed.state } : {}),
                action: "none",
                ms: Date.now() - started,
            }),
        );
    };
}
