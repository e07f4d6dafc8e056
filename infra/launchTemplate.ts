import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { TAG } from "../handler/tags";
import { ConfigError } from "./config";

/**
 * What every instance of the fleet is launched from: an instance role, a security group that
 * admits only the load balancer, and one launch template. No instance is declared here: the
 * handler owns the fleet, and the deploy invocation launches it (see fleetDeploy.ts).
 */

/** SSM parameter of the latest Amazon Linux 2023 AMI for an architecture. */
export function amazonLinuxParameter(architecture: "x86_64" | "arm64"): string {
    return `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${architecture}`;
}

export interface MachineImage {
    /**
     * An AMI id, or `resolve:ssm:<parameter>`: EC2 resolves that at each launch, so the launch
     * template never changes and every replacement boots the latest patched image.
     */
    imageId: string;
    rootDeviceName: string;
    /** The SSM parameter EC2 reads at launch, if any: launching needs `ssm:GetParameters` on it. */
    ssmParameter?: string;
}

/** The image to launch; checks a configured AMI's architecture before any resource is declared. */
export async function lookupImage(amiId: string | undefined, architecture: "x86_64" | "arm64"): Promise<MachineImage> {
    if (amiId === undefined) {
        const parameter = amazonLinuxParameter(architecture);
        return { imageId: `resolve:ssm:${parameter}`, rootDeviceName: "/dev/xvda", ssmParameter: parameter };
    }
    let image: aws.ec2.GetAmiResult;
    try {
        image = await aws.ec2.getAmi({ filters: [{ name: "image-id", values: [amiId] }] });
    } catch (error) {
        throw new ConfigError("amiId", `${amiId} cannot be found (${(error as Error).message}); allowed: an AMI available to this account in this region`);
    }
    if (image.architecture !== architecture) {
        throw new ConfigError("amiId", `${amiId} is ${image.architecture} but instanceTypes are ${architecture}; allowed: an ${architecture} AMI`);
    }
    return { imageId: amiId, rootDeviceName: image.rootDeviceName };
}

/**
 * The built-in application: a page naming the instance, zone and market that answered, served by
 * the Python that Amazon Linux ships, so boot needs no package download and fits the budget. It
 * answers every path with the page, so whatever `healthCheckPath` says (an edit changes the target
 * group's health check in place, at once) the running instances stay healthy.
 */
export function builtInUserData(appPort: number): string {
    return `#!/bin/bash
# spot-availability built-in page: which instance, zone and market answered.
set -euo pipefail
# IMDSv2 (the launch template requires tokens); a failure names what could not be read.
imds() {
  local token value
  if ! token=$(curl -sSf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60" 2>&1); then
    echo "spot-availability: cannot get an IMDSv2 token from http://169.254.169.254: $token" >&2
    exit 1
  fi
  if ! value=$(curl -sSf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1" 2>&1); then
    echo "spot-availability: cannot read instance metadata $1: $value" >&2
    exit 1
  fi
  echo "$value"
}
instance_id=$(imds instance-id)
zone=$(imds placement/availability-zone)
market=$(imds instance-life-cycle)
mkdir -p /srv/www
cat > /srv/www/index.html <<HTML
<!doctype html>
<html><head><meta charset="utf-8"><title>$instance_id</title></head>
<body><h1>Served by $instance_id</h1><p>Zone: $zone</p><p>Market: $market</p></body></html>
HTML
cat > /srv/www/page.py <<'PY'
import http.server, sys
PAGE = open("/srv/www/index.html", "rb").read()
class Page(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
    def do_GET(self):
        self.do_HEAD()
        self.wfile.write(PAGE)
http.server.ThreadingHTTPServer(("", int(sys.argv[1])), Page).serve_forever()
PY
cat > /etc/systemd/system/spot-page.service <<UNIT
[Unit]
Description=spot-availability built-in page
After=network-online.target
[Service]
ExecStart=/usr/bin/python3 /srv/www/page.py ${appPort}
DynamicUser=yes
AmbientCapabilities=CAP_NET_BIND_SERVICE
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now spot-page.service
`;
}

export interface LaunchTemplateArgs {
    /** `<project>/<stack>`, the ownership tag value. */
    stack: string;
    instanceName: string;
    vpcId: pulumi.Input<string>;
    image: MachineImage;
    keyName?: string;
    sshCidr?: string;
    appPort: number;
    /** A user data script; undefined selects the built-in page. */
    userData?: string;
    loadBalancerSecurityGroupId: pulumi.Input<string>;
}

export class InstanceLaunchTemplate extends pulumi.ComponentResource {
    public readonly role: aws.iam.Role;
    public readonly securityGroup: aws.ec2.SecurityGroup;
    public readonly launchTemplate: aws.ec2.LaunchTemplate;

    constructor(name: string, args: LaunchTemplateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:InstanceLaunchTemplate", name, {}, opts);

        // Session Manager instead of open SSH: a shell needs no key, port or bastion.
        this.role = new aws.iam.Role(`${name}-instance`, {
            assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "ec2.amazonaws.com" }),
        }, { parent: this });
        new aws.iam.RolePolicyAttachment(`${name}-instance-ssm`, {
            role: this.role.name,
            policyArn: aws.iam.ManagedPolicy.AmazonSSMManagedInstanceCore,
        }, { parent: this });
        const profile = new aws.iam.InstanceProfile(`${name}-instance`, { role: this.role.name }, { parent: this });

        // A constant description: it is ForceNew (terraform-provider-aws
        // `internal/service/ec2/vpc_security_group.go`), and running instances use the group.
        this.securityGroup = new aws.ec2.SecurityGroup(`${name}-instance`, {
            vpcId: args.vpcId,
            description: "Instances: the application port from the load balancer only",
            tags: { Name: `${name}-instance` },
        }, { parent: this });
        // The rules that carry appPort are named by it: an edit creates the new port's rules and the
        // engine deletes the old ones at the end of the update, so the old instances, which listen
        // on the old port, stay reachable until the deploy has replaced them. (Under a fixed name the
        // provider would modify the rule in place, at once: `vpc_security_group_ingress_rule.go`
        // replaces a rule only when `security_group_id` changes.)
        new aws.vpc.SecurityGroupIngressRule(`${name}-instance-app-${args.appPort}`, {
            securityGroupId: this.securityGroup.id,
            referencedSecurityGroupId: args.loadBalancerSecurityGroupId,
            ipProtocol: "tcp",
            fromPort: args.appPort,
            toPort: args.appPort,
            description: "application port from the load balancer",
        }, { parent: this });
        new aws.vpc.SecurityGroupEgressRule(`${name}-alb-to-instance-${args.appPort}`, {
            securityGroupId: args.loadBalancerSecurityGroupId,
            referencedSecurityGroupId: this.securityGroup.id,
            ipProtocol: "tcp",
            fromPort: args.appPort,
            toPort: args.appPort,
            description: "load balancer to the instances' application port",
        }, { parent: this });
        if (args.keyName !== undefined && args.sshCidr !== undefined) {
            new aws.vpc.SecurityGroupIngressRule(`${name}-instance-ssh`, {
                securityGroupId: this.securityGroup.id,
                cidrIpv4: args.sshCidr,
                ipProtocol: "tcp",
                fromPort: 22,
                toPort: 22,
                description: "SSH from sshCidr",
            }, { parent: this });
        }
        // Updates and the SSM agent reach AWS through the internet gateway.
        new aws.vpc.SecurityGroupEgressRule(`${name}-instance-out`, {
            securityGroupId: this.securityGroup.id,
            cidrIpv4: "0.0.0.0/0",
            ipProtocol: "-1",
            description: "outbound to anywhere",
        }, { parent: this });

        const userData = args.userData ?? builtInUserData(args.appPort);
        this.launchTemplate = new aws.ec2.LaunchTemplate(name, {
            description: `${args.stack}: instances of ${args.instanceName}`,
            imageId: args.image.imageId,
            // No instance type: every launch names its own, so an instanceTypes edit makes no new
            // version (which would roll the whole fleet) and the deploy retypes instead.
            keyName: args.keyName,
            iamInstanceProfile: { arn: profile.arn },
            vpcSecurityGroupIds: [this.securityGroup.id],
            userData: Buffer.from(userData, "utf8").toString("base64"),
            metadataOptions: {
                httpEndpoint: "enabled",
                httpTokens: "required",
                httpPutResponseHopLimit: 1,
            },
            blockDeviceMappings: [{
                deviceName: args.image.rootDeviceName,
                ebs: { encrypted: "true", volumeType: "gp3", deleteOnTermination: "true" },
            }],
            tagSpecifications: [{ resourceType: "volume", tags: { [TAG.stack]: args.stack } }],
            // A change makes a new version but leaves the default (the released version, which the
            // event path launches) alone: the deploy promotes the new one once its first instances
            // are healthy, so a version that never serves never answers an interruption.
            updateDefaultVersion: false,
        }, { parent: this });

        this.registerOutputs({ launchTemplateId: this.launchTemplate.id, securityGroupId: this.securityGroup.id });
    }
}
