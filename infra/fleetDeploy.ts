import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { createDeployHandler, DeployAnswer } from "../handler/deploy";
import { desiredFleet } from "../handler/deployRequest";
import { HandlerSettings } from "../handler/settings";

/**
 * The fleet's deploy: a second function built from the handler's code, with Lambda's longest
 * timeout because this path waits, and an `aws.lambda.Invocation` with lifecycle scope `CRUD`
 * that calls it. The provider invokes it on create, on every change of its input (the desired
 * fleet) and on delete, with a `tf.action` key saying which:
 * https://www.pulumi.com/registry/packages/aws/api-docs/lambda/invocation/
 * Pulumi declares no instance: an `aws.ec2.Instance` on one-time spot cannot fall back on a
 * capacity error, cannot change type in place (AWS refuses to stop it), and goes stale in state
 * when AWS reclaims it.
 */

/** Lambda's maximum: a deploy waits for instances to run and, on a retype, to serve. https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html */
export const DEPLOY_TIMEOUT_SECONDS = 900;

export interface FleetDeployArgs {
    settings: pulumi.Output<HandlerSettings>;
    role: aws.iam.Role;
    logGroup: aws.cloudwatch.LogGroup;
    /** Packages the Lambda runtime provides, left out of the archive. */
    runtimeProvided: string[];
    runtime: string;
    /** The role's policy: the function runs with it. */
    policy: pulumi.Resource;
    /** What the instances use (network, security groups, template, target group): deleted only after the fleet is gone. */
    fleetUses: pulumi.Resource[];
    /** The event path's function: updated to the new settings before the deploy runs. */
    eventsFunction: pulumi.Resource;
}

export class FleetDeploy extends pulumi.ComponentResource {
    public readonly function: aws.lambda.CallbackFunction<unknown, DeployAnswer>;
    public readonly invocation: aws.lambda.Invocation;
    /** The fleet as the last `pulumi up` left it: name → instance id, from the invocation's answer. */
    public readonly instances: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: FleetDeployArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:FleetDeploy", name, {}, opts);
        const settings = args.settings;

        this.function = new aws.lambda.CallbackFunction<unknown, DeployAnswer>(name, {
            description: pulumi.interpolate`Launches and tears down the instances of ${settings.stack} at pulumi up and pulumi destroy`,
            runtime: args.runtime,
            role: args.role,
            memorySize: 256,
            timeout: DEPLOY_TIMEOUT_SECONDS,
            loggingConfig: { logFormat: "JSON", logGroup: args.logGroup.name },
            codePathOptions: { extraExcludePackages: args.runtimeProvided },
            callbackFactory: () => createDeployHandler(settings.get()),
        }, { parent: this, dependsOn: [args.policy] });

        // Its identity is stable: no `triggers` and no `qualifier`, and `function_name` is the one
        // function's (terraform-provider-aws `internal/service/lambda/invocation.go`: only those three
        // are ForceNew). Replacing it would terminate the fleet and launch it again; any change of
        // the desired fleet (template version, target group, security groups included) is an update.
        this.invocation = new aws.lambda.Invocation(name, {
            functionName: this.function.name,
            lifecycleScope: "CRUD",
            input: settings.apply((handler) => JSON.stringify({ desired: desiredFleet(handler) })),
        }, {
            parent: this,
            dependsOn: [...args.fleetUses, args.policy, this.function, args.eventsFunction],
            // A replacement would otherwise create the new invocation (which finds the fleet in place)
            // and then delete the old one, which terminates the whole fleet.
            deleteBeforeReplace: true,
        });
        this.instances = this.invocation.result.apply((result) => (JSON.parse(result) as { instances: Record<string, string> }).instances);
        this.registerOutputs({ functionName: this.function.name, instances: this.instances });
    }
}
