import { CreateTagsCommand, DescribeInstancesCommand, DescribeSpotPriceHistoryCommand, EC2Client, RunInstancesCommand, _InstanceType } from "@aws-sdk/client-ec2";
import { ElasticLoadBalancingV2Client, RegisterTargetsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { DETAIL_TYPE } from "../../handler/events";
import { instanceNameTag, TAG } from "../../handler/tags";
import { EventPath } from "../delivery";
import { CREDENTIALS } from "../emulator";
import { Stage } from "../stage";

/**
 * The seed's algorithm (../shared/seed/README, 2019), as its README describes it, on the same
 * clock: a CloudWatch Events rule sends each interruption warning to a Lambda (asynchronous, no
 * reserved concurrency) that
 * 1. "Determining Zone": takes the first zone without a running instance named for it
 *    (`Prometheus-B`), else a random zone;
 * 2. "Getting Spot Price": reads the zone's latest spot price of the instance type;
 * 3. "Request Spot": launches one spot instance of that type at that price (here the one-call
 *    RunInstances equivalent of its legacy spot request);
 * 4. sleeps a fixed 30 s for the request to be fulfilled;
 * 5. "Tag": names it after its zone;
 * 6. "Registering": registers it with the target group.
 * It never drains, never retries a step itself (a failure fails the invocation, which Lambda's
 * asynchronous retries run again from the top), and never reconciles.
 */

const SEED_FUNCTION_ARN = "arn:aws:lambda:us-east-2:123456789012:function:seed";

/** The seed's own event path: one rule for the warning, delivered asynchronously; a 60 s timeout fits its sleep. */
export const SEED_PATH: EventPath = {
    functionArn: SEED_FUNCTION_ARN,
    timeoutS: 60,
    rules: [{
        name: "seed-interruption-warning",
        arn: "arn:aws:events:us-east-2:123456789012:rule/seed-interruption-warning",
        pattern: JSON.stringify({ source: ["aws.ec2"], "detail-type": [DETAIL_TYPE.interruptionWarning] }),
        targets: [SEED_FUNCTION_ARN],
    }],
    queues: [],
    mappings: [],
};

/** The fixed wait after the spot request: the seed's `sleep(30)`. */
const SEED_SLEEP_MS = 30_000;

export function seedHandler(stage: Stage): (event: unknown) => Promise<void> {
    const { stack } = stage;
    const connection = { region: stack.region, endpoint: stage.endpoint, credentials: CREDENTIALS };
    const ec2 = new EC2Client(connection);
    const elb = new ElasticLoadBalancingV2Client(connection);
    const instanceType = stack.instanceTypes[0];

    return async (event) => {
        const warned = (event as { detail: { "instance-id": string } }).detail["instance-id"];
        const reservations = (await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.stack}`, Values: [stack.stack] }] }))).Reservations ?? [];
        const running = reservations.flatMap((r) => r.Instances ?? []).filter((i) => i.State?.Name === "running");
        const named = (zone: string) => running.some((i) => i.Placement?.AvailabilityZone === zone && i.Tags?.some((t) => t.Key === TAG.name && t.Value === instanceNameTag(stack.instanceName, zone, stack.region)));
        const zone = stack.zones.find((z) => !named(z)) ?? stack.zones[Math.floor(Math.random() * stack.zones.length)];

        const history = await ec2.send(new DescribeSpotPriceHistoryCommand({
            InstanceTypes: [instanceType as _InstanceType],
            AvailabilityZone: zone,
            ProductDescriptions: [stack.spotProductDescription],
            MaxResults: 1,
        }));
        const price = history.SpotPriceHistory?.[0]?.SpotPrice;

        const launched = await ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            LaunchTemplate: { LaunchTemplateId: stack.launchTemplateId, Version: "$Default" },
            InstanceType: instanceType as _InstanceType,
            SubnetId: stack.subnetsByZone[zone],
            InstanceMarketOptions: { MarketType: "spot", SpotOptions: { SpotInstanceType: "one-time", MaxPrice: price } },
        }));
        const id = launched.Instances?.[0]?.InstanceId as string;
        stage.log(`seed: launched ${id} in ${zone} for warned ${warned}; sleeping 30 s`);

        await new Promise((resolve) => setTimeout(resolve, SEED_SLEEP_MS));
        await ec2.send(new CreateTagsCommand({
            Resources: [id],
            Tags: [{ Key: TAG.name, Value: instanceNameTag(stack.instanceName, zone, stack.region) }, { Key: TAG.stack, Value: stack.stack }],
        }));
        await elb.send(new RegisterTargetsCommand({ TargetGroupArn: stack.targetGroupArn, Targets: [{ Id: id }] }));
        stage.log(`seed: tagged and registered ${id}`);
    };
}
