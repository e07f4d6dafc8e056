import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/**
 * The Application Load Balancer, its security group, the target group the instances join and
 * the listeners. The health check and the deregistration delay are sized for the two-minute
 * interruption budget: a replacement is InService about 10 s after it answers, and a drained
 * instance is out of rotation long before it disappears.
 */

export const HEALTH_CHECK = {
    intervalSeconds: 5,
    timeoutSeconds: 4,
    healthyThreshold: 2,
    unhealthyThreshold: 2,
} as const;

/** Seconds in-flight requests get to finish on a drained instance; well under the 120 s warning. */
export const DEREGISTRATION_DELAY_SECONDS = 30;

/** TLS 1.3 with TLS 1.2 fallback: AWS's recommended policy for new listeners. */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

export interface LoadBalancerArgs {
    vpcId: pulumi.Input<string>;
    subnetIds: pulumi.Input<string>[];
    appPort: number;
    healthCheckPath: string;
    /** A validated certificate: HTTPS on 443, and HTTP redirects to it. Without one, plain HTTP. */
    certificateArn?: pulumi.Input<string>;
}

export class LoadBalancer extends pulumi.ComponentResource {
    public readonly securityGroup: aws.ec2.SecurityGroup;
    public readonly loadBalancer: aws.lb.LoadBalancer;
    public readonly targetGroup: aws.lb.TargetGroup;
    public readonly listeners: aws.lb.Listener[];

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:LoadBalancer", name, {}, opts);

        this.securityGroup = new aws.ec2.SecurityGroup(`${name}-alb`, {
            vpcId: args.vpcId,
            description: "Load balancer: HTTP and HTTPS from anywhere",
            tags: { Name: `${name}-alb` },
        }, { parent: this });
        for (const port of [80, 443]) {
            new aws.vpc.SecurityGroupIngressRule(`${name}-alb-${port}`, {
                securityGroupId: this.securityGroup.id,
                ipProtocol: "tcp",
                fromPort: port,
                toPort: port,
                cidrIpv4: "0.0.0.0/0",
                description: `port ${port} from anywhere`,
            }, { parent: this });
        }

        this.loadBalancer = new aws.lb.LoadBalancer(name, {
            loadBalancerType: "application",
            internal: false,
            securityGroups: [this.securityGroup.id],
            subnets: args.subnetIds,
            dropInvalidHeaderFields: true,
        }, { parent: this });

        this.targetGroup = new aws.lb.TargetGroup(name, {
            vpcId: args.vpcId,
            targetType: "instance",
            protocol: "HTTP",
            port: args.appPort,
            deregistrationDelay: DEREGISTRATION_DELAY_SECONDS,
            healthCheck: {
                enabled: true,
                protocol: "HTTP",
                path: args.healthCheckPath,
                matcher: "200-399",
                interval: HEALTH_CHECK.intervalSeconds,
                timeout: HEALTH_CHECK.timeoutSeconds,
                healthyThreshold: HEALTH_CHECK.healthyThreshold,
                unhealthyThreshold: HEALTH_CHECK.unhealthyThreshold,
            },
        }, { parent: this });

        const forward = [{ type: "forward", targetGroupArn: this.targetGroup.arn }];
        if (args.certificateArn === undefined) {
            this.listeners = [new aws.lb.Listener(`${name}-http`, {
                loadBalancerArn: this.loadBalancer.arn,
                port: 80,
                protocol: "HTTP",
                defaultActions: forward,
            }, { parent: this })];
        } else {
            this.listeners = [
                new aws.lb.Listener(`${name}-https`, {
                    loadBalancerArn: this.loadBalancer.arn,
                    port: 443,
                    protocol: "HTTPS",
                    sslPolicy: TLS_POLICY,
                    certificateArn: args.certificateArn,
                    defaultActions: forward,
                }, { parent: this }),
                new aws.lb.Listener(`${name}-http`, {
                    loadBalancerArn: this.loadBalancer.arn,
                    port: 80,
                    protocol: "HTTP",
                    defaultActions: [{
                        type: "redirect",
                        redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" },
                    }],
                }, { parent: this }),
            ];
        }

        this.registerOutputs({
            dnsName: this.loadBalancer.dnsName,
            targetGroupArn: this.targetGroup.arn,
        });
    }
}
