import { ObservedInstance } from "../../handler/model";
import { HandlerSettings } from "../../handler/settings";

/** Plain-data fixtures for the handler's pure parts: a three-zone stack and its instances. */

export const SETTINGS: HandlerSettings = {
    stack: "spot-availability/test",
    region: "us-east-2",
    instanceName: "web",
    instanceTypes: ["t3.micro", "t3a.micro"],
    instancesPerZone: 1,
    subnetsByZone: { "us-east-2a": "subnet-a", "us-east-2b": "subnet-b", "us-east-2c": "subnet-c" },
    launchTemplateId: "lt-1",
    launchTemplateVersion: 1,
    securityGroupIds: ["sg-0123456789abcdef0"],
    release: { batchPercent: 100, healthTimeoutSeconds: 300 },
    targetGroupArn: "arn:tg",
    targetGroup: { healthCheckIntervalSeconds: 5, healthyThreshold: 2, deregistrationDelaySeconds: 30 },
    spotProductDescription: "Linux/UNIX",
    onDemandFallback: true,
    replaceOnRebalance: true,
    drainWhen: "replacement-healthy",
    queueUrl: "https://sqs.us-east-2.amazonaws.com/123456789012/events",
};

/** A running spot t3.micro the deploy launched in zone `us-east-2<letter>`. */
/** The schedule's message, as triage hands it to the planner. */
export const SCHEDULE_MESSAGE = { messageId: "m1", event: { kind: "schedule" as const, id: "e1", time: new Date(0).toISOString() } };

export function observedInstance(id: string, zoneLetter: string, extra: Partial<ObservedInstance> = {}): ObservedInstance {
    return { id, zone: `us-east-2${zoneLetter}`, state: "running", instanceType: "t3.micro", market: "spot", launchedBy: "pulumi", launchTime: 0, ...extra };
}
