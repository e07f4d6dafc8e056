import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/**
 * The load balancer's listeners. They forward to the target group only once the deploy has run:
 * when `appPort` replaces the target group, the deploy first registers the fleet in the new group
 * and waits for it to be healthy, and only then do the listeners switch to it, so the site never
 * forwards to an empty group.
 */

/**
 * TLS 1.3 and 1.2 with hybrid post-quantum key exchange where the client offers it: the policy AWS
 * recommends for new listeners, and the console's default
 * (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html).
 * `ssl_policy` is not ForceNew: an existing listener takes it in place.
 */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09";

export interface ListenersArgs {
    loadBalancer: aws.lb.LoadBalancer;
    targetGroup: aws.lb.TargetGroup;
    /** A validated certificate: HTTPS on 443, and HTTP redirects to it. Without one, plain HTTP. */
    certificateArn?: pulumi.Input<string>;
    /** The deploy invocation: the listeners change only after it. */
    deploy: pulumi.Resource;
    /** The component the listeners were children of before they had their own (stacks keep them). */
    formerParent: pulumi.Resource;
}

export class Listeners extends pulumi.ComponentResource {
    public readonly listeners: aws.lb.Listener[];

    /** `name` is the load balancer component's: the listeners keep their names, so the alias finds them. */
    constructor(name: string, args: ListenersArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:Listeners", name, {}, opts);
        const options: pulumi.CustomResourceOptions = { parent: this, dependsOn: [args.deploy], aliases: [{ parent: args.formerParent }] };
        const forward = [{ type: "forward", targetGroupArn: args.targetGroup.arn }];
        const http = (defaultActions: aws.types.input.lb.ListenerDefaultAction[]) => new aws.lb.Listener(`${name}-http`, {
            loadBalancerArn: args.loadBalancer.arn,
            port: 80,
            protocol: "HTTP",
            defaultActions,
        }, options);
        if (args.certificateArn === undefined) {
            this.listeners = [http(forward)];
        } else {
            this.listeners = [
                new aws.lb.Listener(`${name}-https`, {
                    loadBalancerArn: args.loadBalancer.arn,
                    port: 443,
                    protocol: "HTTPS",
                    sslPolicy: TLS_POLICY,
                    certificateArn: args.certificateArn,
                    defaultActions: forward,
                }, options),
                http([{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }]),
            ];
        }
        this.registerOutputs({ listenerArns: this.listeners.map((listener) => listener.arn) });
    }
}
