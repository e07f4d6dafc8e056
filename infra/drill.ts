import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { TAG } from "../handler/tags";
import { DRILL_TAG, DrillScope, FIS_ACTION, FIS_TARGET } from "./fleetSummary";

/**
 * A fault drill in the real account: AWS FIS experiment templates that send spot interruption
 * notices to this stack's instances, chosen by the stack tag, so the handler's answer can be
 * watched end to end (`npm run drill`). One template interrupts one running spot instance
 * anywhere; one per zone interrupts every running spot instance in that zone.
 */

/** FIS's own notice period; longer ones send a rebalance recommendation first. */
const NOTICE = "PT2M";

export interface DrillArgs {
    stack: string;
    zones: string[];
}

/** The FIS role's policy: find instances, and interrupt only those carrying this stack's tag. */
export function drillPolicy(stack: string): object {
    return {
        Version: "2012-10-17",
        Statement: [
            {
                // FIS resolves tag targets with DescribeInstances, which has no resource-level permissions.
                Sid: "ResolveTargets",
                Effect: "Allow",
                Action: ["ec2:DescribeInstances"],
                Resource: "*",
            },
            {
                Sid: "InterruptOnlyThisStack",
                Effect: "Allow",
                Action: ["ec2:SendSpotInstanceInterruptions"],
                Resource: "arn:*:ec2:*:*:instance/*",
                Condition: { StringEquals: { [`aws:ResourceTag/${TAG.stack}`]: stack } },
            },
        ],
    };
}

/** The template's targets and action for one scope. */
export function drillExperiment(stack: string, scope: DrillScope): Pick<aws.fis.ExperimentTemplateArgs, "description" | "targets" | "actions"> {
    const wholeZone = scope !== "instance";
    return {
        description: wholeZone
            ? `${stack}: spot interruption notice to every running spot instance in ${scope}`
            : `${stack}: spot interruption notice to one running spot instance`,
        targets: [{
            name: FIS_TARGET,
            resourceType: "aws:ec2:spot-instance",
            resourceTags: [{ key: TAG.stack, value: stack }],
            filters: [
                { path: "State.Name", values: ["running"] },
                ...(wholeZone ? [{ path: "Placement.AvailabilityZone", values: [scope] }] : []),
            ],
            selectionMode: wholeZone ? "ALL" : "COUNT(1)",
        }],
        actions: [{
            name: FIS_ACTION,
            actionId: "aws:ec2:send-spot-instance-interruptions",
            parameters: [{ key: "durationBeforeInterruption", value: NOTICE }],
            target: { key: "SpotInstances", value: FIS_TARGET },
        }],
    };
}

export class Drill extends pulumi.ComponentResource {
    /** Scope (`instance` or a zone) → experiment template id. */
    public readonly templates: pulumi.Output<Record<DrillScope, string>>;

    constructor(name: string, args: DrillArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:Drill", name, {}, opts);

        const role = new aws.iam.Role(name, {
            assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "fis.amazonaws.com" }),
        }, { parent: this });
        const policy = new aws.iam.RolePolicy(name, {
            role: role.name,
            policy: JSON.stringify(drillPolicy(args.stack)),
        }, { parent: this });

        const scopes: DrillScope[] = ["instance", ...args.zones];
        const templates = scopes.map((scope) => new aws.fis.ExperimentTemplate(`${name}-${scope}`, {
            ...drillExperiment(args.stack, scope),
            roleArn: role.arn,
            // The interruption is a one-shot action with nothing to stop early.
            stopConditions: [{ source: "none" }],
            tags: { Name: `${args.stack} drill: ${scope}`, [TAG.stack]: args.stack, [DRILL_TAG]: scope },
        }, { parent: this, dependsOn: [policy] }));

        this.templates = pulumi.all(templates.map((template) => template.id))
            .apply((ids) => Object.fromEntries(scopes.map((scope, i) => [scope, ids[i]])));
        this.registerOutputs({ templates: this.templates });
    }
}
