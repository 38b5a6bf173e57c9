import { Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { SyncNetwork } from './network';
import type { RotationSettings } from './settings';
import { secretResource } from './sync-function';
import { requireInteger } from './validation';

export interface DbSecretRotationProps {
  readonly vpc: ec2.IVpc;
  /** The function's subnets: they reach the database already. */
  readonly subnets: ec2.ISubnet[];
  /** Opens the database port to the rotation function (or prints the rule). */
  readonly network: SyncNetwork;
  readonly dbSecretArn: string;
  readonly rotation: RotationSettings;
  /**
   * The customer managed key of the secrets.
   * @default - aws/secretsmanager
   */
  readonly secretsKmsKeyArn?: string;
  /**
   * A Secrets Manager endpoint that the regional hostname resolves to (private DNS on), if the VPC has
   * one with a known security group. The hosted rotation function always calls the regional hostname:
   * without such an endpoint it goes through the subnets' NAT.
   * @default - Secrets Manager through the subnets' NAT
   */
  readonly privateDnsEndpoint?: ec2.IInterfaceVpcEndpoint;
  /** Where a failed rotation is reported (the alarm topic). */
  readonly notify: sns.ITopic;
}

/**
 * Rotates the database secret with Secrets Manager's hosted rotation (a function AWS deploys from its
 * serverless application repository) in the function's subnets, with a security group of its own that
 * reaches only the database port and Secrets Manager over HTTPS.
 */
export class DbSecretRotation extends Construct {
  readonly securityGroup: ec2.SecurityGroup;
  readonly schedule: secretsmanager.RotationSchedule;

  constructor(scope: Construct, id: string, props: DbSecretRotationProps) {
    super(scope, id);
    const { rotation } = props;
    requireInteger(this, 'rotation.days', rotation.days, 1, 1000);
    const encryptionKey = props.secretsKmsKeyArn
      ? kms.Key.fromKeyArn(this, 'SecretsKey', props.secretsKmsKeyArn)
      : undefined;

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'did-sync database secret rotation: out to the database port and Secrets Manager only',
      allowAllOutbound: false,
    });
    props.network.allowDatabase(
      this.securityGroup,
      'RotationDbIngressToAdd',
      'Secrets Manager rotation sets the did-sync database password',
    );
    if (props.privateDnsEndpoint) {
      SyncNetwork.allowHttpsTo(this.securityGroup, props.privateDnsEndpoint, 'Secrets Manager endpoint');
    } else {
      this.securityGroup.addEgressRule(
        ec2.Peer.anyIpv4(),
        ec2.Port.tcp(443),
        'Secrets Manager regional endpoint, through NAT (no private-DNS endpoint in the VPC)',
      );
    }

    const options = {
      vpc: props.vpc,
      vpcSubnets: { subnets: props.subnets },
      securityGroups: [this.securityGroup],
    };
    const hostedRotation = rotation.masterSecretArn
      ? (rotation.engine === 'mysql'
          ? secretsmanager.HostedRotation.mysqlMultiUser
          : secretsmanager.HostedRotation.mariaDbMultiUser)({
          ...options,
          masterSecret: importSecret(this, 'MasterSecret', rotation.masterSecretArn, encryptionKey),
        })
      : (rotation.engine === 'mysql'
          ? secretsmanager.HostedRotation.mysqlSingleUser
          : secretsmanager.HostedRotation.mariaDbSingleUser)(options);

    // The secret is imported by ARN (the stack does not own it): rotation is a schedule on it.
    this.schedule = new secretsmanager.RotationSchedule(this, 'Schedule', {
      secret: importSecret(this, 'DbSecret', props.dbSecretArn, encryptionKey),
      hostedRotation,
      automaticallyAfter: Duration.days(rotation.days),
      // Not during the deploy: with manageDbIngress false the rotation function cannot reach the
      // database until an operator adds the printed rule, and a failed rotation leaves AWSPENDING behind.
      // The first rotation comes after `days`.
      rotateImmediatelyOnUpdate: false,
    });
    // With manageDbIngress, the schedule comes after the rule that lets the rotation function in.
    for (const rule of ingressRulesFrom(Stack.of(this), this.securityGroup))
      this.schedule.node.addDependency(rule);

    // Secrets Manager reports a failed rotation only as an event: send it to the alarm topic.
    const failed = new events.Rule(this, 'RotationFailed', {
      description: 'did-sync: the database secret rotation failed (see the rotation function log)',
      eventPattern: {
        source: ['aws.secretsmanager'],
        detailType: ['AWS Service Event via CloudTrail'],
        detail: {
          eventName: ['RotationFailed'],
          // A partial ARN (no 6-character suffix) names the secret by prefix.
          additionalEventData: {
            SecretId:
              secretResource(props.dbSecretArn) === props.dbSecretArn
                ? [props.dbSecretArn]
                : events.Match.prefix(`${props.dbSecretArn}-`),
          },
        },
      },
      targets: [new eventTargets.SnsTopic(props.notify)],
    });
    NagSuppressions.addResourceSuppressions(failed, [
      {
        id: 'Serverless-EventBusDLQ',
        reason:
          'EventBridge retries delivery to the topic for 24 hours; a failed rotation also stays on the secret (LastRotatedDate, an AWSPENDING version) and in CloudTrail.',
      },
    ]);
  }
}

/** The database ingress rules whose source is `group` (added by SyncNetwork.allowDatabase). */
function ingressRulesFrom(stack: Stack, group: ec2.ISecurityGroup): ec2.CfnSecurityGroupIngress[] {
  return stack.node
    .findAll()
    .filter(
      (c): c is ec2.CfnSecurityGroupIngress =>
        c instanceof ec2.CfnSecurityGroupIngress && c.sourceSecurityGroupId === group.securityGroupId,
    );
}

function importSecret(
  scope: Construct,
  id: string,
  arn: string,
  encryptionKey: kms.IKey | undefined,
): secretsmanager.ISecret {
  const complete = secretResource(arn) === arn;
  return secretsmanager.Secret.fromSecretAttributes(scope, id, {
    ...(complete ? { secretCompleteArn: arn } : { secretPartialArn: arn }),
    ...(encryptionKey ? { encryptionKey } : {}),
  });
}
