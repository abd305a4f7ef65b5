/* Full method names of the asg services, as they travel in :path. */
#ifndef ASG_METHODS_H
#define ASG_METHODS_H

#define M_AGENT_PING "/asg.v1.Agent/Ping"
#define M_AGENT_GET_METRICS "/asg.v1.Agent/GetMetrics"
#define M_AGENT_SET_LOAD "/asg.v1.Agent/SetLoad"
#define M_MONITOR_REGISTER "/asg.v1.Monitor/Register"
#define M_MONITOR_DEREGISTER "/asg.v1.Monitor/Deregister"
#define M_MONITOR_JOIN "/asg.v1.Monitor/Join"
#define M_HEALTH_CHECK "/grpc.health.v1.Health/Check"

#endif
