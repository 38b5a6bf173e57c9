import { CfnOutput, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

export interface SyncNetworkProps {
  /** The VICIdial VPC (imported: synth needs no lookups). */
  readonly vpc: ec2.IVpc;
  /** The VICIdial database's security group. */
  readonly dbSecurityGroupId: string;
  /** Add the database ingress rules to that group; when false, outputs print them instead. */
  readonly manageDbIngress: boolean;
  readonly dbPort: number;
  /** Where the DID Optimizer API listens (on the internet). */
  readonly apiPort: number;
}

/**
 * The function's security group, with nothing open but what a sync needs: the database port to the
 * database's security group, the API port to the internet, and HTTPS to AWS (DynamoDB, Secrets Manager),
 * which the API rule already covers when the API is on 443.
 */
export class SyncNetwork extends Construct {
  readonly securityGroup: ec2.SecurityGroup;
  readonly dbSecurityGroup: ec2.ISecurityGroup;
  private readonly props: SyncNetworkProps;

  constructor(scope: Construct, id: string, props: SyncNetworkProps) {
    super(scope, id);
    this.props = props;
    this.dbSecurityGroup = ec2.SecurityGroup.fromSecurityGroupId(this, 'Database', props.dbSecurityGroupId, {
      mutable: props.manageDbIngress,
    });
    this.securityGroup = new ec2.SecurityGroup(this, 'Function', {
      vpc: props.vpc,
      description: 'did-sync Lambda: out to the VICIdial database, the DID Optimizer API and AWS over HTTPS',
      allowAllOutbound: false,
    });
    this.allowDatabase(this.securityGroup, 'DbIngressToAdd', 'did-sync Lambda reads vicidial_log');
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(props.apiPort),
      props.apiPort === 443
        ? 'DID Optimizer API, and AWS APIs (DynamoDB, Secrets Manager) over HTTPS'
        : 'DID Optimizer API',
    );
    if (props.apiPort !== 443) {
      // DynamoDB's gateway endpoint and NAT both take public AWS addresses: no narrower peer exists.
      this.securityGroup.addEgressRule(
        ec2.Peer.anyIpv4(),
        ec2.Port.tcp(443),
        'AWS APIs (DynamoDB, Secrets Manager) over HTTPS',
      );
    }
  }

  /**
   * Lets `group` reach the database port: its egress rule, and the database group's ingress rule (or, when
   * the stack must not change that group, an output with the command that adds it).
   */
  allowDatabase(group: ec2.SecurityGroup, outputId: string, description: string): void {
    const { dbPort, dbSecurityGroupId, manageDbIngress } = this.props;
    group.addEgressRule(this.dbSecurityGroup, ec2.Port.tcp(dbPort), description);
    if (manageDbIngress) {
      this.dbSecurityGroup.addIngressRule(group, ec2.Port.tcp(dbPort), description);
    } else {
      new CfnOutput(Stack.of(this), outputId, {
        description: `Add this rule to the VICIdial database security group (manageDbIngress is false): ${description}`,
        value: `aws ec2 authorize-security-group-ingress --group-id ${dbSecurityGroupId} --protocol tcp --port ${dbPort} --source-group ${group.securityGroupId}`,
      });
    }
  }

  /** HTTPS from `group` to an interface endpoint, and the endpoint's ingress from `group`. */
  static allowHttpsTo(
    group: ec2.SecurityGroup,
    endpoint: ec2.IInterfaceVpcEndpoint,
    description: string,
  ): void {
    group.connections.allowTo(endpoint, ec2.Port.tcp(443), description);
  }
}
