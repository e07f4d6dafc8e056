import { EC2Client, paginateDescribeInstances, TerminateInstancesCommand, waitUntilInstanceTerminated } from "@aws-sdk/client-ec2";
import * as pulumi from "@pulumi/pulumi";
import { TAG } from "../handler/tags";

/**
 * Instances the handler launched live outside Pulumi's state, so `pulumi destroy` would leave
 * them running, and then fail on the security group and subnets they still use. This resource
 * owns them at teardown: its delete terminates every handler-launched instance of the stack and
 * waits until they are gone. The program orders it after the event rules and the function (so
 * nothing launches during teardown) and before the security group and subnets.
 */

/** Passes over the fleet at most: an invocation already running when the function was deleted may still finish one launch. */
const SWEEPS = 3;

/** Seconds to wait for the instances to terminate. */
const TERMINATION_WAIT_SECONDS = 600;

/** Terminates this stack's handler-launched instances, waits until they are terminated, and returns their ids. */
export async function terminateHandlerLaunched(ec2: EC2Client, stack: string): Promise<string[]> {
    const terminated: string[] = [];
    for (let sweep = 0; sweep < SWEEPS; sweep++) {
        const ids: string[] = [];
        const pages = paginateDescribeInstances({ client: ec2 }, {
            Filters: [
                { Name: `tag:${TAG.stack}`, Values: [stack] },
                { Name: `tag:${TAG.launchedBy}`, Values: ["handler"] },
                { Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped"] },
            ],
        });
        for await (const page of pages) {
            ids.push(...(page.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId as string));
        }
        if (ids.length === 0) {
            break;
        }
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
        await waitUntilInstanceTerminated({ client: ec2, maxWaitTime: TERMINATION_WAIT_SECONDS, minDelay: 5, maxDelay: 15 }, { InstanceIds: ids });
        terminated.push(...ids);
    }
    return terminated;
}

export interface HandlerLaunchedInstancesInputs {
    /** Ownership tag value. */
    stack: pulumi.Input<string>;
    region: pulumi.Input<string>;
    /** The `aws:profile` the stack deploys with, if any: teardown runs with the same credentials. */
    profile?: pulumi.Input<string>;
}

interface TeardownState {
    stack: string;
    region: string;
    profile?: string;
}

const teardownProvider: pulumi.dynamic.ResourceProvider<TeardownState, TeardownState> = {
    async create(inputs) {
        return { id: `${inputs.stack}/handler-launched`, outs: inputs };
    },
    async delete(_id, state) {
        const ec2 = new EC2Client({ region: state.region, ...(state.profile ? { profile: state.profile } : {}), retryMode: "adaptive" });
        const terminated = await terminateHandlerLaunched(ec2, state.stack);
        pulumi.log.info(`terminated ${terminated.length} handler-launched instance(s)${terminated.length > 0 ? `: ${terminated.join(", ")}` : ""}`);
    },
};

export class HandlerLaunchedInstances extends pulumi.dynamic.Resource {
    constructor(name: string, args: HandlerLaunchedInstancesInputs, opts?: pulumi.CustomResourceOptions) {
        super(teardownProvider, name, args, opts, "spot-availability", "HandlerLaunchedInstances");
    }
}
