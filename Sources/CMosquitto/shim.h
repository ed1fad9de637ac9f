#ifndef ADAPTERD_CMOSQUITTO_SHIM_H
#define ADAPTERD_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
