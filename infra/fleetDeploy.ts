import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { createDeployHandler } from "../handler/deploy";
import { answeredFleet, DeployAnswer, desiredFleet, TeardownGuard } from "../handler/deployRequest";
import { HandlerSettings } from "../handler/settings";

/**
 * The fleet's deploy: a second function built from the handler's code, with Lambda's longest
 * timeout because this path waits, and an `aws.lambda.Invocation` with lifecycle scope `CRUD`
 * that calls it. The provider invokes it on create, on every change of its input (the desired
 * fleet) and on delete, with a `tf.action` key saying which:
 * https://www.pulumi.com/registry/packages/aws/api-docs/lambda/invocation/
 * A teardown guard, a second invocation created before it, terminates the fleet at `pulumi
 * destroy`, even when the deploy's create failed and is not in the state.
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
    /** The event function's timeout: how long a batch begun before teardown may still launch. */
    eventsTimeoutSeconds: number;
}

export class FleetDeploy extends pulumi.ComponentResource {
    public readonly function: aws.lambda.CallbackFunction<unknown, DeployAnswer>;
    public readonly invocation: aws.lambda.Invocation;
    public readonly teardownGuard: aws.lambda.Invocation;
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

        // Created before the deploy and deleted after it and after everything that can launch
        // (the event source mapping and the rules depend on the deploy): its delete terminates the
        // fleet. Its create and update do nothing, so it is in the state before the deploy can
        // launch anything, and a config edit never replaces it (no `triggers`, no `qualifier`, the
        // one function's name: only those three are ForceNew in terraform-provider-aws
        // `internal/service/lambda/invocation.go`).
        const guard: TeardownGuard = { quietSeconds: args.eventsTimeoutSeconds };
        this.teardownGuard = new aws.lambda.Invocation(`${name}-teardown-guard`, {
            functionName: this.function.name,
            lifecycleScope: "CRUD",
            input: JSON.stringify({ teardownGuard: guard }),
        }, { parent: this, dependsOn: [...args.fleetUses, args.policy, this.function] });

        // Its identity is stable too, and a replacement would be harmless: its delete does nothing
        // (the guard tears down), its create converges the fleet in place. Any change of the
        // desired fleet (template version, target group, security groups included) is an update.
        this.invocation = new aws.lambda.Invocation(name, {
            functionName: this.function.name,
            lifecycleScope: "CRUD",
            input: settings.apply((handler) => JSON.stringify({ desired: desiredFleet(handler) })),
        }, {
            parent: this,
            dependsOn: [...args.fleetUses, args.policy, this.function, args.eventsFunction, this.teardownGuard],
        });
        // A failed update leaves a result that does not answer the input: no fleet is claimed then.
        this.instances = pulumi.all([this.invocation.result, this.invocation.input]).apply(([result, input]) => {
            const fleet = answeredFleet(result, input);
            if (fleet === undefined) {
                pulumi.log.warn(`the last deploy of this fleet did not finish, so the instances output is empty: the schedule's reconcile converges the fleet (npm run status shows it); see "When pulumi up fails" in the README`, this);
            }
            return fleet ?? {};
        });
        this.registerOutputs({ functionName: this.function.name, instances: this.instances });
    }
}
