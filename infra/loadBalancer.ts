import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/**
 * The Application Load Balancer, its security group and the target group the instances join (the
 * listeners are in listeners.ts: they switch target group only after the deploy). The health check and the deregistration delay are sized for the two-minute
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

export interface LoadBalancerArgs {
    vpcId: pulumi.Input<string>;
    subnetIds: pulumi.Input<string>[];
    appPort: number;
    healthCheckPath: string;
    /** A certificate serves HTTPS on 443; without one only port 80 is open. */
    https: boolean;
}

export class LoadBalancer extends pulumi.ComponentResource {
    public readonly securityGroup: aws.ec2.SecurityGroup;
    public readonly loadBalancer: aws.lb.LoadBalancer;
    public readonly targetGroup: aws.lb.TargetGroup;

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:LoadBalancer", name, {}, opts);

        // The description is ForceNew (terraform-provider-aws `internal/service/ec2/vpc_security_group.go`):
        // it stays the same whether or not HTTPS is served.
        this.securityGroup = new aws.ec2.SecurityGroup(`${name}-alb`, {
            vpcId: args.vpcId,
            description: "Load balancer: HTTP and HTTPS from anywhere",
            tags: { Name: `${name}-alb` },
        }, { parent: this });
        for (const port of args.https ? [80, 443] : [80]) {
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

        // `port` is ForceNew (terraform-provider-aws `internal/service/elbv2/target_group.go`): an
        // appPort edit creates a new group, which the deploy fills before the listeners move to it.
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

        this.registerOutputs({
            dnsName: this.loadBalancer.dnsName,
            targetGroupArn: this.targetGroup.arn,
        });
    }
}
